"""The Redis client's pool queues a burst instead of failing it (thousands of sockets signing out at once)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from eva_common.redis import create_redis
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration


async def test_a_burst_beyond_the_pool_waits_for_a_connection_instead_of_failing() -> None:
    redis = create_redis(test_infra().redis_url, max_connections=2, wait_seconds=10)
    key = f"test-empty-{uuid.uuid4().hex}"
    try:  # each BLPOP holds its connection for 0.2 s: ten of them through two connections queue, none fails
        results = await asyncio.gather(*(redis.blpop([key], timeout=0.2) for _ in range(10)))
        assert results == [None] * 10
    finally:
        await redis.aclose()
