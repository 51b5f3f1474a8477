"""Per-client-IP limit on unverifiable requests (fixed window in Redis). Verified deliveries never reach it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# INCR the window's counter, start the window on its first hit; returns {count, seconds left in the window}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    retry_after_seconds: int = 0


class FailureLimiter(Protocol):
    async def hit(self, client_ip: str) -> LimitDecision:
        """Counts one unverifiable request from `client_ip`; says whether it is still within the limit."""
        ...


class RedisFailureLimiter:
    def __init__(
        self, *, redis: Redis, limit: int, window_seconds: int = 60, prefix: str = "ingest:unverified"
    ) -> None:
        self._redis = redis
        self._limit = limit
        self._window = window_seconds
        self._prefix = prefix
        self._script = redis.register_script(_HIT)

    async def hit(self, client_ip: str) -> LimitDecision:
        try:
            count, ttl = await self._script(keys=[f"{self._prefix}:{client_ip}"], args=[self._window])
        except RedisError:
            # Fail open: the request is refused anyway (401/400); only the throttling is lost while Redis is down.
            logger.warning("rate limiter unavailable; not throttling", exc_info=True)
            return LimitDecision(allowed=True)
        if int(count) > self._limit:
            return LimitDecision(allowed=False, retry_after_seconds=max(1, int(ttl)))
        return LimitDecision(allowed=True)
