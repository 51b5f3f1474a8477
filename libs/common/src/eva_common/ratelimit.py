"""Rate limits in Redis (shared by every replica): a sliding window counted in fixed sub-buckets.

`hit()` counts one request and tells whether it is allowed and, if not, after how many seconds to retry. This is
the one limiter: services wrap it with their policy (what is counted, what a refusal or a Redis outage means) and
depend on the `HitCounter` / `Limiter` protocols, so unit tests can pass an in-memory fake.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from eva_common.errors import ResourceExhausted

# Adds one hit to the current bucket and sums the buckets of the window, atomically.
_HIT = """
local now_bucket = tonumber(ARGV[1])
local buckets = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local key = KEYS[1] .. ':' .. now_bucket
redis.call('INCR', key)
redis.call('EXPIRE', key, ttl)
local total = 0
for i = 0, buckets - 1 do
  local v = redis.call('GET', KEYS[1] .. ':' .. (now_bucket - i))
  if v then total = total + tonumber(v) end
end
return total
"""


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    window_seconds: int
    buckets: int = 6


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    count: int
    retry_after: int


class HitCounter(Protocol):
    async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        """Counts one request of `key` under the limit `name`."""
        ...


class Limiter(HitCounter, Protocol):
    async def reset(self, name: str, key: str, limit: Limit | None = None, *, now: float | None = None) -> None:
        """Forgets the key's hits."""
        ...


def _bucket(limit: Limit, moment: float) -> tuple[int, int]:
    """(the bucket `moment` falls in, the seconds a bucket lasts)."""
    bucket_seconds = max(1, limit.window_seconds // limit.buckets)
    return int(moment // bucket_seconds), bucket_seconds


class RateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = "rl") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_HIT)

    async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        moment = time.time() if now is None else now
        bucket, bucket_seconds = _bucket(limit, moment)
        count = int(await self._script(
            keys=[f"{self._prefix}:{name}:{key}"],
            args=[bucket, limit.buckets, limit.window_seconds + bucket_seconds],
        ))
        if count <= limit.requests:
            return Decision(True, count, 0)
        retry_after = max(1, math.ceil((bucket + 1) * bucket_seconds - moment))
        return Decision(False, count, retry_after)

    async def reset(self, name: str, key: str, limit: Limit | None = None, *, now: float | None = None) -> None:
        """Forgets the key's hits. With its `limit`, deletes the window's bucket keys at once; without it, SCANs
        the whole keyspace for them (slow on a big Redis: pass the limit on hot paths such as a login)."""
        if limit is None:
            pattern = f"{self._prefix}:{name}:{key}:*"
            async for found in self._redis.scan_iter(match=pattern, count=100):
                await self._redis.delete(found)
            return
        bucket, _ = _bucket(limit, time.time() if now is None else now)
        await self._redis.delete(*(f"{self._prefix}:{name}:{key}:{bucket - i}" for i in range(limit.buckets + 1)))


def rate_limited(
    decision: Decision, detail: str = "too many requests", code: str = "RATE_LIMITED"
) -> ResourceExhausted:
    """The 429 error for a refused decision (transports add Retry-After from it)."""
    return ResourceExhausted(detail, code=code, retry_after=decision.retry_after)
