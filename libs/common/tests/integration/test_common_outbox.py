"""The transactional outbox: an event written in a rolled-back transaction never leaves; a committed one is
published once, in order, by the relay, which publishes a batch at a time and marks sent only the prefix Kafka
acknowledged (the first unacknowledged row records the error, the rows behind it wait)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from eva_common.db import create_engine, session_factory, transaction
from eva_common.kafka.publisher import KafkaPublisher, OutgoingRecord
from eva_common.outbox import NOTIFY_CHANNEL, OutboxEvent, OutboxRelay, enqueue, gathered
from eva_events.envelope import EventEnvelope, make_event
from eva_testing.db import empty_database
from eva_testing.infra import test_infra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from eva_testing.waiting import KafkaTools
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

pytestmark = pytest.mark.integration


async def test_committed_events_are_relayed_in_order_and_rolled_back_ones_never() -> None:
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=2)
        publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="test")
        try:
            async with engine.begin() as connection:
                table = OutboxEvent.__table__  # type: ignore[attr-defined]
                await connection.run_sync(lambda sync: OutboxEvent.metadata.create_all(sync, tables=[table]))
            topic = unique_topic("outbox")
            await create_topics(infra.kafka_bootstrap, topic, partitions=1)
            await publisher.start()
            factory = session_factory(engine)
            for n in range(3):
                async with transaction(factory) as session:
                    await enqueue(session, topic=topic, key="conv-1",
                                  event=make_event("thing.happened", tenant_id="t1", data={"n": n}))
            with pytest.raises(RuntimeError):
                async with transaction(factory) as session:
                    await enqueue(session, topic=topic, key="conv-1",
                                  event=make_event("thing.happened", tenant_id="t1", data={"n": "rolled back"}))
                    raise RuntimeError("business rule failed")

            relay = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=0.05)
            task = asyncio.create_task(relay.run())
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest")
            await consumer.start()
            try:
                received = [await asyncio.wait_for(consumer.getone(), 15) for _ in range(3)]
                extra = await consumer.getmany(timeout_ms=1500)
            finally:
                await consumer.stop()
                await relay.stop()
                await asyncio.wait_for(task, 10)
            events = [EventEnvelope.from_bytes(record.value) for record in received]
            assert [event.data["n"] for event in events] == [0, 1, 2]
            assert all(record.key == b"conv-1" for record in received)
            assert not any(extra.values())
            async with engine.connect() as connection:
                unsent = (await connection.exec_driver_sql(
                    "SELECT count(*) FROM outbox WHERE sent_at IS NULL")).scalar()
            assert unsent == 0
        finally:
            await publisher.stop()
            await engine.dispose()


async def test_a_stopped_relay_leaves_its_pooled_connection_listening_to_nothing() -> None:
    """The relay LISTENs on its leader connection, which goes back to the pool when it stops: the listener it added
    must be removed (UNLISTEN), or the pooled connection keeps waking a relay that no longer runs."""
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        # two connections, reused: the relay's leader and its batch transaction; then both are ours to inspect
        engine = create_async_engine(database.owner_url, pool_size=2, max_overflow=0)
        try:
            async with engine.begin() as connection:
                table = OutboxEvent.__table__  # type: ignore[attr-defined]
                await connection.run_sync(lambda sync: OutboxEvent.metadata.create_all(sync, tables=[table]))
            relay = OutboxRelay(engine=engine, publisher=RecordingPublisher(), poll_seconds=0.05)
            task = asyncio.create_task(relay.run())

            async def listening() -> list[list[str]]:
                channels: list[list[str]] = []
                async with engine.connect() as first, engine.connect() as second:
                    for connection in (first, second):
                        rows = await connection.exec_driver_sql("SELECT pg_listening_channels()")
                        channels.append([row[0] for row in rows])
                return channels

            for _ in range(200):  # the relay holds the leader connection and LISTENs once it leads
                async with engine.connect() as connection:
                    listeners = (await connection.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND query ILIKE 'LISTEN%'")).scalar()
                if listeners:
                    break
                await asyncio.sleep(0.05)
            assert listeners == 1
            await relay.stop()
            await asyncio.wait_for(task, 10)
            assert await listening() == [[], []]
        finally:
            await engine.dispose()


async def test_a_relay_whose_listening_connection_is_lost_leads_again_and_hears_the_next_event() -> None:
    """PostgreSQL ends the leader's session (a restart, say): the relay does not fall back to its 5 s safety poll
    for good, it takes a new connection, listens again, and the next event leaves at once."""
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=3)
        publisher = RecordingPublisher()
        try:
            await create_outbox(engine)
            relay = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=0.05, listening_poll_seconds=60)
            task = asyncio.create_task(relay.run())

            async def listener_pids() -> list[int]:
                async with engine.connect() as connection:
                    rows = await connection.exec_driver_sql(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND query ILIKE 'LISTEN%'")
                    return [row[0] for row in rows]

            async def one_listener() -> int:
                for _ in range(200):
                    pids = await listener_pids()
                    if len(pids) == 1:
                        return pids[0]
                    await asyncio.sleep(0.05)
                raise AssertionError("the relay never listened")

            first = await one_listener()
            async with engine.connect() as connection:
                await connection.exec_driver_sql(f"SELECT pg_terminate_backend({first})")
            for _ in range(200):  # the relay notices the loss and leads again on another connection
                pids = await listener_pids()
                if pids and pids != [first]:
                    break
                await asyncio.sleep(0.05)
            assert pids and first not in pids

            factory = session_factory(engine)
            async with transaction(factory) as session:
                await enqueue(session, topic="things.v1", key="k", event=make_event("thing.happened",
                                                                                    tenant_id="t1", data={}))
            for _ in range(100):  # heard through the new LISTEN: well within the 60 s poll
                if publisher.records:
                    break
                await asyncio.sleep(0.05)
            assert len(publisher.records) == 1
            await relay.stop()
            await asyncio.wait_for(task, 10)
        finally:
            await engine.dispose()


async def create_outbox(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        table = OutboxEvent.__table__  # type: ignore[attr-defined]
        await connection.run_sync(lambda sync: OutboxEvent.metadata.create_all(sync, tables=[table]))


async def outbox_rows(engine: AsyncEngine) -> list[sa.Row[Any]]:
    async with engine.connect() as connection:
        return list((await connection.execute(sa.text(
            "SELECT id, event_id, msg_key, sent_at, attempts, last_error FROM outbox ORDER BY id"))).all())


async def test_many_events_are_relayed_in_batches_once_each_in_id_order_per_key() -> None:
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=2)
        publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="test")
        try:
            await create_outbox(engine)
            topic = unique_topic("outbox-batches")
            await create_topics(infra.kafka_bootstrap, topic, partitions=3)
            await publisher.start()
            async with transaction(session_factory(engine)) as session:
                for n in range(250):
                    await enqueue(session, topic=topic, key=f"conv-{n % 5}",
                                  event=make_event("thing.happened", tenant_id="t1", data={"n": n}))

            relay = OutboxRelay(engine=engine, publisher=publisher)  # batches of 100
            assert [await relay.relay_once() for _ in range(4)] == [100, 100, 50, 0]

            rows = await outbox_rows(engine)
            assert len(rows) == 250 and all(row.sent_at is not None for row in rows)
            assert all(row.attempts == 0 and row.last_error is None for row in rows)
            received = await KafkaTools(infra.kafka_bootstrap).read_all(topic)
            event_ids = [EventEnvelope.from_bytes(record.value).id for record in received]
            assert sorted(event_ids) == sorted(row.event_id for row in rows)  # each exactly once
            for key in {row.msg_key for row in rows}:
                in_kafka = [EventEnvelope.from_bytes(record.value).id for record in received
                            if record.key == key.encode()]
                assert in_kafka == [row.event_id for row in rows if row.msg_key == key]  # in id order
            assert {dict(record.headers)["event-id"].decode() for record in received} == set(event_ids)
        finally:
            await publisher.stop()
            await engine.dispose()


@dataclass
class PrefixPublisher:
    """Acknowledges only the first `acknowledge` records of a batch (None: all of them), as Kafka does when a
    broker stops answering in the middle of one; keeps what it acknowledged."""

    acknowledge: int | None = None
    acknowledged: list[OutgoingRecord] = field(default_factory=list)
    offered: list[list[OutgoingRecord]] = field(default_factory=list)

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        raise AssertionError("the relay publishes batches")

    async def publish_batch(self, records: Sequence[OutgoingRecord]) -> tuple[int, BaseException | None]:
        self.offered.append(list(records))
        count = len(records) if self.acknowledge is None else min(self.acknowledge, len(records))
        self.acknowledged.extend(records[:count])
        return count, None if count == len(records) else TimeoutError("no acknowledgement within 10 s")


async def test_only_the_acknowledged_prefix_is_marked_sent_and_the_rest_follows_in_order_later() -> None:
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=2)
        try:
            await create_outbox(engine)
            async with transaction(session_factory(engine)) as session:
                for n in range(10):
                    await enqueue(session, topic="t", key=f"conv-{n % 2}",
                                  event=make_event("thing.happened", tenant_id="t1", data={"n": n}))
            publisher = PrefixPublisher(acknowledge=3)
            relay = OutboxRelay(engine=engine, publisher=publisher)

            assert await relay.relay_once() == 3
            rows = await outbox_rows(engine)
            assert [row.sent_at is not None for row in rows] == [True] * 3 + [False] * 7
            assert (rows[3].attempts, rows[3].last_error) == (1, "TimeoutError('no acknowledgement within 10 s')")
            assert all(row.attempts == 0 and row.last_error is None for row in rows[:3] + rows[4:])

            publisher.acknowledge = 0  # still failing: the same row waits, and the others behind it
            assert await relay.relay_once() == 0
            rows = await outbox_rows(engine)
            assert [row.sent_at is not None for row in rows] == [True] * 3 + [False] * 7
            assert rows[3].attempts == 2 and all(row.attempts == 0 for row in rows[4:])

            publisher.acknowledge = None
            assert await relay.relay_once() == 7
            assert await relay.relay_once() == 0
            rows = await outbox_rows(engine)
            assert all(row.sent_at is not None for row in rows)
            assert [len(batch) for batch in publisher.offered if batch] == [10, 7, 7]
            assert [publisher.offered[i][0].headers["event-id"] for i in (1, 2)] == [rows[3].event_id] * 2
            # each event acknowledged exactly once, in id order
            assert [record.headers["event-id"] for record in publisher.acknowledged] == [row.event_id for row in rows]
        finally:
            await engine.dispose()


async def test_events_gathered_in_a_block_are_written_together_in_order_and_wake_the_relay_once() -> None:
    """`gathered`: the block's events go in with one statement at its end, in the order they were enqueued (the relay
    publishes by id), each row as `enqueue` alone writes it; one wake-up for the block; nothing when it raises; an
    inner block leaves its events to the outer."""
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=2)
        listener = await asyncpg.connect(infra.raw_owner_dsn(database.name))
        wakes: list[str] = []
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: wakes.append(args[-1]))
        try:
            async with engine.begin() as connection:
                table = OutboxEvent.__table__  # type: ignore[attr-defined]
                await connection.run_sync(lambda sync: OutboxEvent.metadata.create_all(sync, tables=[table]))
            factory = session_factory(engine)
            events = [make_event("thing.happened", tenant_id="t1", data={"n": n}) for n in range(5)]
            async with transaction(factory) as session:
                async with gathered(session):
                    for n, event in enumerate(events[:3]):
                        await enqueue(session, topic="things", key=f"conv-{n % 2}", event=event)
                    async with gathered(session):  # nested: written with the outer block
                        await enqueue(session, topic="things", key="conv-1", event=events[3])
                    assert await session.scalar(sa.text("SELECT count(*) FROM outbox")) == 0  # held until the end
                    await enqueue(session, topic="things", key="conv-0", event=events[4])
            with pytest.raises(RuntimeError):
                async with transaction(factory) as session, gathered(session):
                    await enqueue(session, topic="things", key="conv-9",
                                  event=make_event("thing.happened", tenant_id="t1", data={"n": "rolled back"}))
                    raise RuntimeError("business rule failed")
            async with transaction(factory) as session, gathered(session):  # a block of one
                await enqueue(session, topic="things", key="conv-5", event=make_event(
                    "thing.happened", tenant_id="t1", data={"n": 5}))
            await asyncio.sleep(0.2)  # notifications are delivered after each commit; give the listener its turn
            async with engine.connect() as connection:
                rows = (await connection.exec_driver_sql(
                    "SELECT event_id, tenant_id, topic, msg_key, payload, headers::text FROM outbox ORDER BY id")).all()
            assert [EventEnvelope.from_bytes(bytes(row[4])).data["n"] for row in rows] == [0, 1, 2, 3, 4, 5]
            assert [row[3] for row in rows] == ["conv-0", "conv-1", "conv-0", "conv-1", "conv-0", "conv-5"]
            first = rows[0]
            assert (first[0], first[1], first[2]) == (events[0].id, "t1", "things")
            assert json.loads(first[5]) == {"event-id": events[0].id, "event-type": "thing.happened", "tenant-id": "t1"}
            assert len(wakes) == 2  # one per committed block
        finally:
            await listener.close()
            await engine.dispose()
