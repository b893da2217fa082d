"""Limits around model calls: a global concurrency limit, a requests-per-minute pace, and bounded retries
with exponential backoff on transient failures."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from . import ModelError, TransientError

T = TypeVar("T")


class RatePacer:
    """Spaces request starts at least 60/rpm seconds apart (no limit when rpm is None or 0)."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class CallLimits:
    concurrency: int = 8
    rpm: float | None = None
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 20.0
    stats: dict[str, int] = field(default_factory=lambda: {"calls": 0, "retries": 0})

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(max(1, self.concurrency))
        self._pacer = RatePacer(self.rpm)

    def backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return base * (0.5 + random.random() / 2)

    async def call(self, fn: Callable[[], Awaitable[T]], on_retry: Callable[[str], None] | None = None) -> T:
        """`fn()` inside the limits; a TransientError is tried again up to `max_retries` times."""
        last: TransientError | None = None
        for attempt in range(self.max_retries + 1):
            async with self._sem:
                await self._pacer.wait()
                self.stats["calls"] += 1
                try:
                    return await fn()
                except TransientError as exc:
                    last = exc
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                if on_retry:
                    on_retry(str(last))
                await asyncio.sleep(self.backoff(attempt))
        raise ModelError(f"gave up after {self.max_retries + 1} tries: {last}")
