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
