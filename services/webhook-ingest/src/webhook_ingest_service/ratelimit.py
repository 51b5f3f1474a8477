"""Per-client-IP limit on unverifiable requests, counted by the shared Redis limiter (eva_common.ratelimit).
Verified deliveries never reach it; while Redis is down it lets requests through (they are refused anyway)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from eva_common.ratelimit import Limit, RateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    retry_after_seconds: int = 0


class FailureLimiter(Protocol):
    async def hit(self, client_ip: str) -> LimitDecision:
        """Counts one unverifiable request from `client_ip`; says whether it is still within the limit."""
        ...


class RedisFailureLimiter:
    def __init__(self, *, redis: Redis, limit: int, window_seconds: int = 60, prefix: str = "ingest") -> None:
        self._limiter = RateLimiter(redis, prefix=prefix)
        self._limit = Limit(limit, window_seconds)

    async def hit(self, client_ip: str) -> LimitDecision:
        try:
            decision = await self._limiter.hit(UNVERIFIED, client_ip, self._limit)
        except RedisError:
            # Fail open: the request is refused anyway (401/400); only the throttling is lost while Redis is down.
            logger.warning("rate limiter unavailable; not throttling", exc_info=True)
            return LimitDecision(allowed=True)
        return LimitDecision(allowed=decision.allowed, retry_after_seconds=decision.retry_after)
