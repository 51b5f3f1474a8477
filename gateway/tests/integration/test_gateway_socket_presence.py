"""SocketPresence on real Redis: a crashed replica's sockets are expired by the heartbeat and announced once; a
user's several sockets make one online and one offline announcement.

The clock runs far in the future, and `expire()` walks every tenant of its Redis database, so this test uses a
database of its own (PRESENCE_TEST_DB) and never expires anyone else's presence on the shared test Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from eva_common.realtime.presence import Connection, PresenceStore
from eva_common.redis import create_redis
from eva_testing.infra import TestInfra
from gateway.socket_presence import SocketPresence
from redis.asyncio import Redis

pytestmark = pytest.mark.integration

FUTURE = time.time() + 10 * 365 * 24 * 3600
PRESENCE_TEST_DB = 11


@pytest.fixture
async def own_db(infra: TestInfra) -> AsyncIterator[Redis]:
    base, _, _ = infra.redis_url.rpartition("/")
    client = create_redis(f"{base}/{PRESENCE_TEST_DB}")
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_heartbeat_expires_a_crashed_replicas_sockets_and_keeps_its_own(own_db: Redis) -> None:
    redis = own_db
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    now = [FUTURE]
    store = PresenceStore(redis, ttl_seconds=30, clock=lambda: now[0])
    crashed = Connection(tenant_id=tenant, user_id="u-crashed", connection_id=f"sid-{uuid.uuid4().hex}")
    assert await store.connect(crashed) is True  # the other replica announced this one, then died

    announced: list[tuple[str, str, bool]] = []

    async def announce(tenant_id: str, user_id: str, online: bool) -> None:
        announced.append((tenant_id, user_id, online))

    presence = SocketPresence(store=store, announce=announce, ttl_seconds=30)
    await presence.signed_in("local-1", tenant_id=tenant, user_id="u-here")
    await presence.signed_in("local-2", tenant_id=tenant, user_id="u-here")  # a second tab: no announcement
    assert await store.online(tenant) == ["u-crashed", "u-here"]

    now[0] += 20
    await presence.heartbeat()  # refreshes u-here's sockets to +50; the crashed one expires at +30
    now[0] += 20
    await presence.heartbeat()
    assert await store.online(tenant) == ["u-here"]
    await presence.heartbeat()  # reported once only
    await presence.signed_out("local-1")
    await presence.close()  # signs local-2 out: the user's last socket
    mine = [change for change in announced if change[0] == tenant]
    assert mine == [(tenant, "u-here", True), (tenant, "u-crashed", False), (tenant, "u-here", False)]
    assert await store.online(tenant) == []
