"""A crashed gateway replica's sockets: their presence entries expire and the sweeper announces each user offline
once, in the user's tenant's room only."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from eva_common.realtime.presence import Connection, PresenceStore
from eva_testing.infra import TestInfra
from realtime_service.emitter import RedisSocketEmitter
from realtime_service.presence import PresenceSweeper
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


async def test_users_left_behind_by_a_crashed_replica_are_announced_offline_once(
    infra: TestInfra, redis: Redis, socket_server: Any, browser: Any
) -> None:
    tenant_a, tenant_b = f"tenant-{uuid.uuid4().hex[:8]}", f"tenant-{uuid.uuid4().hex[:8]}"
    # the crashed replica wrote its entries 40 s ago with a 30 s TTL and never refreshed them
    namespace = f"test-presence-{uuid.uuid4().hex[:8]}"
    crashed = PresenceStore(redis, ttl_seconds=30, clock=lambda: time.time() - 40, namespace=namespace)
    alive = PresenceStore(redis, ttl_seconds=30, namespace=namespace)
    await crashed.connect(Connection(tenant_a, "ana", "crashed-1"))
    await crashed.connect(Connection(tenant_a, "ben", "crashed-2"))
    await alive.connect(Connection(tenant_a, "ben", "alive-1"))  # ben still has a socket elsewhere
    emitter = RedisSocketEmitter(redis_url=infra.redis_url, channel=socket_server.channel)
    sweeper = PresenceSweeper(presence=alive, emitter=emitter)
    try:
        async with browser(f"tenant:{tenant_a}") as colleague, browser(f"tenant:{tenant_b}") as stranger:
            changes = await sweeper.sweep()
            assert [(c.tenant_id, c.user_id, c.online) for c in changes] == [(tenant_a, "ana", False)]
            event, payload = await colleague.next()
            assert (event, payload) == ("presence:update", {"userId": "ana", "online": False})
            assert await sweeper.sweep() == []  # announced once
            assert await alive.online(tenant_a) == ["ben"]
            assert stranger.received.empty()
    finally:
        await emitter.close()
