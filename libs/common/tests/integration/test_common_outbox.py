"""The transactional outbox: an event written in a rolled-back transaction never leaves; a committed one is
published once, in order, by the relay."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from eva_common.db import create_engine, session_factory, transaction
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.outbox import OutboxEvent, OutboxRelay, enqueue
from eva_events.envelope import EventEnvelope, make_event
from eva_testing.db import empty_database
from eva_testing.infra import test_infra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from sqlalchemy.ext.asyncio import create_async_engine

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
