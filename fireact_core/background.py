"""Work that runs beside an import on whatever CPU time the rest of it leaves: a thread of the lowest priority."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, Callable


def lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority. Linux schedules each thread on its own, so the rest of the
    process keeps its share; where the call is missing or refused, nothing changes."""
    with suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def on_thread(fn: Callable[..., Any], *args: Any, name: str = "fireact",
              initializer: Callable[[], None] | None = None) -> Future:
    """`fn(*args)` on a thread of its own, begun now (`initializer` runs first on it); its result or error comes
    through the future."""
    pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=initializer)
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` on a thread of its own at the lowest priority (`lowest_priority`): a core the rest leaves idle
    runs it, and while every core is busy it waits for one."""
    return on_thread(fn, *args, name="fireact-background", initializer=lowest_priority)
