"""The Redis rate limiter: counts across calls (as across replicas), refuses past the limit with a wait."""

from __future__ import annotations

import uuid

import pytest
from eva_common.ratelimit import Limit, RateLimiter, rate_limited
from eva_common.redis import create_redis
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration


async def test_limit_is_shared_and_resets() -> None:
    redis = create_redis(test_infra().redis_url)
    try:
        first, second = RateLimiter(redis), RateLimiter(redis)  # two replicas, one Redis
        key = uuid.uuid4().hex
        limit = Limit(requests=3, window_seconds=60)
        now = 1_000_000.0
        decisions = [await (first if n % 2 else second).hit("login", key, limit, now=now) for n in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        refused = decisions[-1]
        assert 1 <= refused.retry_after <= 10
        error = rate_limited(refused)
        assert error.http_status == 429 and error.retry_after == refused.retry_after
        later = await first.hit("login", key, limit, now=now + 61)
        assert later.allowed  # the window slid past the old hits
        await first.reset("login", key)
        assert (await first.hit("login", key, limit, now=now + 61)).count == 1
        await first.hit("login", key, limit, now=now + 70)
        await second.reset("login", key, limit, now=now + 70)  # the window's buckets only, no SCAN
        assert (await first.hit("login", key, limit, now=now + 70)).count == 1
    finally:
        await redis.aclose()
