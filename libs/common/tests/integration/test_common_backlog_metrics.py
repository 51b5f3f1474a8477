"""The backlog gauges against the real broker and PostgreSQL: a consumer's lag per partition follows what is left
to handle and its series go when it stops; a dead-lettered record counts on its `.dlq` topic; the outbox relay's
sample shows the unsent rows and the age of the oldest, and both fall to 0 once relayed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import pytest
from aiokafka.errors import KafkaConnectionError
from eva_common.db import create_engine, session_factory, transaction
from eva_common.kafka.consumer import ConsumedRecord, ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher, OutgoingRecord
from eva_common.metrics import OUTBOX_UNSENT
from eva_common.outbox import OutboxEvent, OutboxRelay, enqueue
from eva_events.envelope import make_event
from eva_testing.db import empty_database
from eva_testing.infra import test_infra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


class RefusingPublisher:
    """A broker that acknowledges nothing."""

    async def publish_batch(self, records: Sequence[OutgoingRecord]) -> tuple[int, BaseException | None]:
        return 0, KafkaConnectionError("broker away")


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_consumer_lag_follows_the_records_left_and_dead_letters_count_on_their_topic() -> None:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("lag")
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    group = f"g-{uuid.uuid4().hex[:6]}"
    release = asyncio.Event()
    handled: list[bytes] = []

    async def handler(record: ConsumedRecord) -> None:
        if record.value == b"poison":
            raise ValueError("cannot parse")
        if record.value == b"2":
            await release.wait()
        handled.append(record.value)

    loop = ConsumerLoop(bootstrap=bootstrap, topics=[topic], group_id=group, handler=handler, dead_letters=publisher,
                        retry_backoff_seconds=0.01, envelopes=False, max_batch=1, lag_interval_seconds=0)

    def lag() -> float | None:
        return sample("eva_kafka_consumer_lag", group=group, topic=topic, partition="0")

    dead_before = sample("eva_kafka_published_total", topic=f"{topic}.dlq") or 0.0
    try:
        for value in (b"0", b"1", b"2", b"3", b"poison", b"5"):
            await publisher.publish(topic, key=b"k", value=value)
        await loop.start()
        task: asyncio.Task[None] = asyncio.create_task(loop.run())
        # one record a fetch: after "1" is handled, "2" is being handled and 4 more wait behind it
        await eventually(lambda: lag() == 4, "a lag of 4 while the third record is held")
        release.set()
        await eventually(lambda: lag() == 0 and handled == [b"0", b"1", b"2", b"3", b"5"], "the lag back to 0")
        assert sample("eva_kafka_published_total", topic=f"{topic}.dlq") == dead_before + 1
        await loop.stop()
        await asyncio.wait_for(task, 15)
        assert lag() is None  # the stopped consumer's partitions are no longer its to report
    finally:
        release.set()
        await publisher.stop()


async def test_the_relay_samples_the_outbox_backlog_and_its_oldest_age() -> None:
    infra = test_infra()
    async with empty_database(infra, "outbox") as database:
        engine = create_engine(database.owner_url, pool_size=3)
        try:
            async with engine.begin() as connection:
                table = OutboxEvent.__table__  # type: ignore[attr-defined]
                await connection.run_sync(lambda sync: OutboxEvent.metadata.create_all(sync, tables=[table]))
            factory = session_factory(engine)
            for n in range(3):
                async with transaction(factory) as session:
                    await enqueue(session, topic="t", key="k", event=make_event("x.y", tenant_id="t1", data={"n": n}))
            async with engine.begin() as connection:
                await connection.exec_driver_sql(
                    "UPDATE outbox SET created_at = now() - interval '90 seconds' "
                    "WHERE id = (SELECT min(id) FROM outbox)")
            relay = OutboxRelay(engine=engine, publisher=RecordingPublisher(), poll_seconds=0.05,
                                backlog_sample_seconds=0)
            await relay.sample_backlog()
            assert sample("eva_outbox_unsent") == 3
            oldest = sample("eva_outbox_oldest_unsent_seconds")
            assert oldest is not None and 90 <= oldest < 120

            # a leader whose broker refuses everything: the backlog stays, sampled as it polls; once it stops
            # leading it reports 0 (the next leader reports the backlog)
            refusing = OutboxRelay(engine=engine, publisher=RefusingPublisher(), poll_seconds=0.05,
                                   backlog_sample_seconds=0)
            OUTBOX_UNSENT.set(0)
            task: asyncio.Task[None] = asyncio.create_task(refusing.run())
            try:
                await eventually(lambda: sample("eva_outbox_unsent") == 3, "the leader's sample of the backlog")
            finally:
                await refusing.stop()
                await asyncio.wait_for(task, 10)
            assert sample("eva_outbox_unsent") == 0 and sample("eva_outbox_oldest_unsent_seconds") == 0

            publisher = RecordingPublisher()
            relay = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=0.05, backlog_sample_seconds=0)
            OUTBOX_UNSENT.set(99)
            task = asyncio.create_task(relay.run())
            try:
                await eventually(lambda: len(publisher.records) == 3 and sample("eva_outbox_unsent") == 0
                                 and sample("eva_outbox_oldest_unsent_seconds") == 0,
                                 "the backlog sampled empty after the relay")
            finally:
                await relay.stop()
                await asyncio.wait_for(task, 10)
        finally:
            await engine.dispose()
