"""Limits around model calls: a concurrency limit (fixed, or adaptive), a requests-per-minute pace, and
bounded retries with exponential backoff on transient failures.

Adaptive concurrency (the default: no --concurrency) works like TCP's congestion window: it starts at
`start`, rises by one for every answer that comes back (doubling each round trip) until the first back-off,
then by one per round trip; a 429 or a timeout halves it (at most once per round trip) and the call waits
what the server asked for (Retry-After) or its backoff. It never goes past `max_concurrency`; `--rpm` still
spaces request starts."""

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


class AdaptiveLimit:
    """How many calls may be in flight: fixed, or adapting to what the endpoint takes (see the module's text)."""

    def __init__(self, fixed: int | None = None, start: int = 32, maximum: int = 256):
        self.adaptive = fixed is None
        self.maximum = max(1, maximum if fixed is None else fixed)
        self.limit = float(min(start, self.maximum) if self.adaptive else self.maximum)
        self.threshold = float(self.maximum)  # slow start below it, one per round trip above it
        self.in_flight = 0
        self.peak = 0
        self.backoffs = 0
        self._cut_at = 0.0
        self._cond = asyncio.Condition()

    async def acquire(self) -> float:
        async with self._cond:
            while self.in_flight >= int(self.limit):
                await self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return time.monotonic()

    async def release(self, started: float, outcome: str) -> None:
        """outcome: "ok", "backoff" (a 429 or a timeout) or "other" (a failure that says nothing of load)."""
        async with self._cond:
            self.in_flight -= 1
            if self.adaptive and outcome == "ok":
                grow = 1.0 if self.limit < self.threshold else 1.0 / self.limit
                self.limit = min(float(self.maximum), self.limit + grow)
            elif self.adaptive and outcome == "backoff" and started >= self._cut_at:
                self.limit = self.threshold = max(1.0, self.limit / 2)
                self._cut_at = time.monotonic()  # calls started before this cut do not cut again
                self.backoffs += 1
            self._cond.notify_all()


@dataclass
class CallLimits:
    concurrency: int | None = None
    rpm: float | None = None
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 20.0
    start: int = 32
    max_concurrency: int = 256
    stats: dict[str, int] = field(default_factory=lambda: {"calls": 0, "retries": 0})

    def __post_init__(self) -> None:
        self.window = AdaptiveLimit(self.concurrency, self.start, self.max_concurrency)
        self._pacer = RatePacer(self.rpm)

    def backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return base * (0.5 + random.random() / 2)

    async def call(self, fn: Callable[[], Awaitable[T]], on_retry: Callable[[str], None] | None = None) -> T:
        """`fn()` inside the limits; a TransientError is tried again up to `max_retries` times."""
        last: TransientError | None = None
        for attempt in range(self.max_retries + 1):
            started = await self.window.acquire()
            outcome = "other"
            try:
                await self._pacer.wait()
                self.stats["calls"] += 1
                result = await fn()
                outcome = "ok"
                return result
            except TransientError as exc:
                last = exc
                outcome = "backoff" if exc.kind in ("rate_limit", "timeout") else "other"
            finally:
                await self.window.release(started, outcome)
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                if on_retry:
                    on_retry(str(last))
                pause = last.retry_after if last.retry_after is not None else self.backoff(attempt)
                await asyncio.sleep(pause)
        raise ModelError(f"gave up after {self.max_retries + 1} tries: {last}")
