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


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` on a thread of its own at the lowest priority (`lowest_priority`): a core the rest leaves idle
    runs it, and while every core is busy it waits for one."""
    pool = ThreadPoolExecutor(1, initializer=lowest_priority)
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)
