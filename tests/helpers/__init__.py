"""Helpers the test modules share (test modules never import one another)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 60.0, what: str = "", interval: float = 0.1) -> T:
    """Call `check` until it returns something true and return that; AssertionError naming `what` (and the last
    value) after `timeout` seconds. The one poll loop of the suite: no test sleeps for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or check}: last {value!r}")
        time.sleep(interval)


def wait_for_run_thread(name: str, timeout: float = 60.0) -> None:
    """Wait until the background thread of run `name` (`engine.start_run`) has ended, so that no test leaves it
    writing to its database while the interpreter shuts down."""
    import threading

    wait_until(lambda: not any(t.name == f"fireact-run-{name}" and t.is_alive() for t in threading.enumerate()),
               timeout, f"the thread of run {name} to end")
