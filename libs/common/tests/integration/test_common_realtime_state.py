"""Presence across replicas (connect, disconnect, heartbeat, a crashed replica's expiry, each change reported
once) and the replay reader (complete, too old, ahead of the sequence), against the test profile's Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from eva_common.realtime.presence import Connection, PresenceStore
from eva_common.realtime.sequence import RedisSequencer, ReplayReader, SeqRequest
from eva_common.redis import create_redis
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_user_is_online_while_any_socket_lives_and_each_change_is_reported_once() -> None:
    redis = create_redis(test_infra().redis_url)
    clock = Clock()
    namespace = f"test-presence-{uuid.uuid4().hex[:8]}"  # this test's own keys: its clock runs ahead
    replica_a, replica_b = (PresenceStore(redis, ttl_seconds=30, clock=clock, namespace=namespace) for _ in range(2))
    tenant, other_tenant, ana, ben = (uuid.uuid4().hex for _ in range(4))
    ana_a, ana_b = Connection(tenant, ana, "a-1"), Connection(tenant, ana, "b-1")
    ben_b = Connection(tenant, ben, "b-2")
    try:
        assert await replica_a.connect(ana_a) is True  # came online
        assert await replica_b.connect(ana_b) is False  # a second socket: no change
        assert await replica_b.connect(ben_b) is True
        assert await replica_a.online(tenant) == sorted([ana, ben])
        assert await replica_a.online(other_tenant) == []
        assert await replica_a.disconnect(ana_a) is False  # ana still has her socket on b
        assert await replica_b.online(tenant) == sorted([ana, ben])

        # replica b crashes: its entries are not refreshed; 20 s later a's heartbeat is irrelevant to them
        clock.now += 20
        assert await replica_a.expire() == []  # nothing expired yet
        clock.now += 11
        changes = await replica_a.expire()
        assert sorted((c.tenant_id, c.user_id, c.online) for c in changes) == sorted([(tenant, ana, False),
                                                                                      (tenant, ben, False)])
        assert await replica_a.online(tenant) == []
        assert await replica_b.expire() == []  # reported once
        assert await replica_b.disconnect(ana_b) is False  # already reported offline by the expiry
    finally:
        await redis.aclose()


async def test_the_heartbeat_keeps_sockets_alive_but_never_revives_a_disconnected_one() -> None:
    redis = create_redis(test_infra().redis_url)
    clock = Clock()
    store = PresenceStore(redis, ttl_seconds=30, clock=clock, namespace=f"test-presence-{uuid.uuid4().hex[:8]}")
    tenant, ana = uuid.uuid4().hex, uuid.uuid4().hex
    live, gone = Connection(tenant, ana, "a-1"), Connection(tenant, ana, "a-2")
    try:
        await store.connect(live)
        await store.connect(gone)
        assert await store.disconnect(gone) is False
        for _ in range(4):  # 80 s of heartbeats every 20 s
            clock.now += 20
            await store.refresh([live, gone])
            assert await store.expire() == []
        assert await store.online(tenant) == [ana]
        assert await store.disconnect(live) is True  # the last socket: ana goes offline
        assert await store.online(tenant) == []
    finally:
        await redis.aclose()


async def test_the_replay_reader_says_what_was_missed_or_that_a_resync_is_needed() -> None:
    redis = create_redis(test_infra().redis_url)
    tenant = uuid.uuid4().hex
    sequencer = RedisSequencer(redis=redis, buffer_size=5, dedupe_ttl_seconds=60)
    reader = ReplayReader(redis)
    try:
        assert await reader.current(tenant) == 0
        assert (await reader.replay(tenant_id=tenant, after_seq=0)).complete  # nothing happened, nothing missed
        await asyncio.gather(*(sequencer.assign(tenant_id=tenant, event_id=uuid.uuid4().hex, event="message:new",
                                                payload={"n": n}) for n in range(8)))
        assert await reader.current(tenant) == 8
        replay = await reader.replay(tenant_id=tenant, after_seq=5)
        assert replay.complete and [e.seq for e in replay.events] == [6, 7, 8]
        assert all(e.payload["seq"] == e.seq and e.event == "message:new" for e in replay.events)
        assert (await reader.replay(tenant_id=tenant, after_seq=3)).complete  # 4..8 are still buffered
        too_old = await reader.replay(tenant_id=tenant, after_seq=2)  # 3 was trimmed (buffer of 5)
        assert not too_old.complete and too_old.events == []
        ahead = await reader.replay(tenant_id=tenant, after_seq=9)
        assert not ahead.complete
        up_to_date = await reader.replay(tenant_id=tenant, after_seq=8)
        assert up_to_date.complete and up_to_date.events == []
        paged = await reader.replay(tenant_id=tenant, after_seq=4, limit=2)
        assert paged.complete and [e.seq for e in paged.events] == [5, 6]
    finally:
        await redis.aclose()



async def test_a_batch_takes_its_seqs_in_order_in_one_call_and_a_repeated_event_keeps_its_own() -> None:
    redis = create_redis(test_infra().redis_url)
    sequencer = RedisSequencer(redis=redis, buffer_size=100, dedupe_ttl_seconds=60)
    tenant, other = uuid.uuid4().hex, uuid.uuid4().hex
    first, second, third, elsewhere = (uuid.uuid4().hex for _ in range(4))
    try:
        before = await sequencer.assign(tenant_id=tenant, event_id=first, event="message:new", payload={"id": "m1"})
        await sequencer.mark_emitted_many([(first, before.seq)])
        batch = [SeqRequest(tenant, second, "message:new", {"id": "m2"}),
                 SeqRequest(other, elsewhere, "message:new", {"id": "x1"}),
                 SeqRequest(tenant, first, "message:new", {"id": "m1"}),  # redelivered, already emitted
                 SeqRequest(tenant, third, "message:status", {"id": "m2", "status": "SENT"})]

        assignments = await sequencer.assign_many(batch)

        assert [(a.seq, a.emitted) for a in assignments] == [(2, False), (1, False), (1, True), (3, False)]
        assert [(e.seq, e.event_id, e.payload) for e in await sequencer.buffered(tenant_id=tenant)] == [
            (1, first, {"id": "m1", "seq": 1}), (2, second, {"id": "m2", "seq": 2}),
            (3, third, {"id": "m2", "status": "SENT", "seq": 3})]
        await sequencer.mark_emitted_many([(second, 2), (third, 3)])
        again = await sequencer.assign_many(batch)
        assert [(a.seq, a.emitted) for a in again] == [(2, True), (1, False), (1, True), (3, True)]
    finally:
        await redis.aclose()
