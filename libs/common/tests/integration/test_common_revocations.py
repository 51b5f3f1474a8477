"""Revocation times in Redis, read one by one (each request) and many at once (the socket sweep)."""

from __future__ import annotations

import uuid

import pytest
from eva_common.auth import RedisRevocations
from eva_common.redis import create_redis
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration


async def test_many_subjects_are_read_in_batches_and_only_revoked_ones_are_named() -> None:
    redis = create_redis(test_infra().redis_url)
    revocations = RedisRevocations(redis)
    ana, ben, cleo = (f"user-{uuid.uuid4().hex}" for _ in range(3))
    try:
        await revocations.revoke(ana, at_ms=1_000)
        await revocations.revoke(cleo, at_ms=3_000)
        assert await revocations.revoked_before_many([ana, ben, cleo, ana], batch=2) == {ana: 1_000, cleo: 3_000}
        assert await revocations.revoked_before_many([]) == {}
        assert await revocations.revoked_before_ms(ben) is None
    finally:
        await redis.aclose()
