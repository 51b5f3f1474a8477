"""Per-socket rate limit of client events: a token bucket in memory (the socket lives on this replica)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second up to `burst`; each event takes one."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Takes a token; returns 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SocketRateLimits:
    def __init__(self, *, events_per_second: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if events_per_second <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self._rate = events_per_second
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after_ms(self, sid: str) -> int | None:
        """None when the socket may send this event, else how long (ms) until it may."""
        now = self._clock()
        bucket = self._buckets.get(sid)
        if bucket is None:
            bucket = self._buckets[sid] = TokenBucket(rate=self._rate, burst=self._burst, tokens=self._burst,
                                                      updated=now)
        wait = bucket.take(now)
        return None if wait == 0 else max(1, math.ceil(wait * 1000))

    def forget(self, sid: str) -> None:
        self._buckets.pop(sid, None)
