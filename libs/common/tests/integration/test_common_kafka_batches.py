"""ConsumerLoop with a batch handler, against the real broker: the records of a fetch arrive together and in order;
a transient failure retries the batch, any other failure hands its records one by one to the per-record handler
(so a poison record alone ends in <topic>.dlq); a record that is no envelope is dead-lettered before the batch;
offsets are committed when the partition goes quiet and when the loop stops (also when a handler made it stop),
not after every batch. KafkaPublisher.publish_batch reports how many records, from the first, Kafka acknowledged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError
from eva_common.errors import Unavailable
from eva_common.kafka.consumer import BatchHandler, ConsumedRecord, ConsumerLoop, Handler
from eva_common.kafka.publisher import KafkaPublisher, OutgoingRecord
from eva_events.envelope import EventEnvelope, make_event
from eva_events.topics import MAX_MESSAGE_BYTES
from eva_testing.infra import test_infra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.waiting import KafkaTools, eventually

pytestmark = pytest.mark.integration

FOREVER = 3600.0  # a commit interval no test outlives: only the quiet-partition and stop commits can happen


class Seen:
    """What a loop handed over: whole batches to the batch handler, single records to the per-record handler, and
    every record handled successfully by either, in the order it was handled."""

    def __init__(self) -> None:
        self.batches: list[list[ConsumedRecord]] = []
        self.singles: list[ConsumedRecord] = []
        self.handled: list[ConsumedRecord] = []

    def numbers(self) -> list[int]:
        return [number(record) for record in self.handled]

    async def until(self, count: int) -> None:
        async def enough() -> bool:
            return len(self.handled) >= count

        await eventually(enough, timeout=30)


def number(record: ConsumedRecord) -> int:
    n: int = record.event().data["n"]
    return n


def loop_for(topic: str, group: str, publisher: KafkaPublisher, *, batch: BatchHandler, single: Handler,
             **options: Any) -> ConsumerLoop:
    return ConsumerLoop(bootstrap=test_infra().kafka_bootstrap, topics=[topic], group_id=group, handler=single,
                        batch_handler=batch, dead_letters=publisher, retry_backoff_seconds=0.01, **options)


@asynccontextmanager
async def running(loop: ConsumerLoop) -> AsyncIterator[asyncio.Task[None]]:
    """Runs the loop; stops it afterwards and waits for it (its outcome stays on the task for the test to check)."""
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        await loop.stop()
        await asyncio.wait({task}, timeout=15)
        assert task.done()


@asynccontextmanager
async def topic_with_publisher(prefix: str) -> AsyncIterator[tuple[str, KafkaPublisher]]:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic(prefix)
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        yield topic, publisher
    finally:
        await publisher.stop()


async def publish_numbers(publisher: KafkaPublisher, topic: str, numbers: Sequence[int]) -> list[EventEnvelope]:
    events = [make_event("thing.happened", tenant_id="t1", data={"n": n}) for n in numbers]
    for event in events:
        await publisher.publish_event(topic, event, key="k")
    return [EventEnvelope.from_bytes(event.to_bytes()) for event in events]  # as decoded (times kept to the ms)


async def committed(group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on the topic, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=test_infra().kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def committed_is(group: str, topic: str, expected: dict[int, int]) -> bool:
    return await committed(group, topic) == expected


def group_name() -> str:
    return f"g-{uuid.uuid4().hex[:6]}"


async def test_a_fetch_arrives_as_one_batch_in_order_and_the_offsets_are_committed_when_the_loop_stops() -> None:
    async with topic_with_publisher("batches") as (topic, publisher):
        sent = await publish_numbers(publisher, topic, range(20))  # all there before the loop starts
        group = group_name()
        seen = Seen()

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            seen.batches.append(list(records))
            seen.handled.extend(records)
            if len(seen.handled) == len(sent):
                await loop.stop()  # from inside: no quiet fetch follows, only the stop can commit

        async def single(record: ConsumedRecord) -> None:
            seen.singles.append(record)

        loop = loop_for(topic, group, publisher, batch=batch, single=single, commit_interval_seconds=FOREVER)
        async with running(loop) as task:
            await seen.until(len(sent))
            await asyncio.wait_for(task, 15)  # stopped by its handler
        assert task.exception() is None
        assert len(seen.batches) < len(sent) and max(len(b) for b in seen.batches) > 1, [len(b) for b in seen.batches]
        assert seen.numbers() == list(range(20))  # each once, in order
        assert [record.offset for record in seen.handled] == list(range(20))
        assert [record.envelope for record in seen.handled] == sent  # decoded by the loop
        assert seen.singles == []
        assert await committed(group, topic) == {0: 20}

        # the same group resumes after the last record: it sees only what came later
        [later] = await publish_numbers(publisher, topic, [99])
        again = Seen()

        async def batch_again(records: Sequence[ConsumedRecord]) -> None:
            again.handled.extend(records)

        async with running(loop_for(topic, group, publisher, batch=batch_again, single=single)):
            await again.until(1)
        assert [record.envelope for record in again.handled] == [later]


async def test_a_fetch_over_several_partitions_is_one_batch_each_keys_records_in_order_every_offset_committed(
) -> None:
    """Records keyed over four partitions (as events keyed by conversation are) arrive in batches that mix
    partitions, not one batch per partition; each key's records keep their order; each partition's offset is
    committed."""
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("spread")
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=4)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        keys = [f"conversation-{k}" for k in range(8)]
        for n in range(40):
            await publisher.publish_event(topic, make_event("thing.happened", tenant_id="t1", data={"n": n}),
                                          key=keys[n % len(keys)])
        group = group_name()
        seen = Seen()

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            seen.batches.append(list(records))
            seen.handled.extend(records)

        async def single(record: ConsumedRecord) -> None:
            seen.singles.append(record)

        loop = loop_for(topic, group, publisher, batch=batch, single=single, commit_interval_seconds=FOREVER)
        async with running(loop):
            await seen.until(40)
        assert sorted(seen.numbers()) == list(range(40)) and seen.singles == []
        assert any(len({record.partition for record in b}) > 1 for b in seen.batches), [
            sorted({record.partition for record in b}) for b in seen.batches]
        for key in keys:  # each key's records in the order published
            numbers = [number(record) for record in seen.handled if record.key == key.encode()]
            assert numbers == sorted(numbers) and len(numbers) == 5
        per_partition: dict[int, int] = {}
        for record in seen.handled:
            per_partition[record.partition] = max(per_partition.get(record.partition, 0), record.offset + 1)
        await eventually(lambda: committed_is(group, topic, per_partition), timeout=15)
    finally:
        await publisher.stop()


async def test_a_transient_failure_retries_the_batch_and_a_quiet_partition_commits_its_offsets() -> None:
    async with topic_with_publisher("batches-transient") as (topic, publisher):
        await publish_numbers(publisher, topic, range(20))
        group = group_name()
        seen = Seen()
        attempts: list[list[int]] = []

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            attempts.append([record.offset for record in records])
            if len(attempts) <= 3:  # more than max_attempts: a transient failure never falls back or dead-letters
                raise Unavailable("database restarting")
            seen.batches.append(list(records))
            seen.handled.extend(records)

        async def single(record: ConsumedRecord) -> None:
            seen.singles.append(record)

        loop = loop_for(topic, group, publisher, batch=batch, single=single, commit_interval_seconds=FOREVER)
        async with running(loop) as task:
            await seen.until(20)
            # nothing more to fetch: the loop commits although the interval is far from over
            assert await eventually(lambda: committed_is(group, topic, {0: 20}), timeout=20)
            assert not task.done()
        assert task.exception() is None
        assert attempts[0] == attempts[1] == attempts[2] == attempts[3]  # the same batch again, not a later one
        assert seen.numbers() == list(range(20))  # nothing lost, nothing twice, order kept
        assert seen.singles == []  # retried as a batch, never record by record


async def test_offsets_are_not_committed_after_each_batch_but_when_a_failing_handler_stops_the_loop() -> None:
    async with topic_with_publisher("batches-stop") as (topic, publisher):
        await publish_numbers(publisher, topic, range(20))
        group = group_name()
        seen = Seen()
        committed_during_third_batch: dict[int, int] | None = None

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            nonlocal committed_during_third_batch
            seen.batches.append(list(records))
            if len(seen.batches) == 3:
                committed_during_third_batch = await committed(group, topic)
                await loop.stop()
                raise Unavailable("database restarting")  # still failing when the loop stops: run() raises it
            seen.handled.extend(records)

        async def single(record: ConsumedRecord) -> None:
            seen.singles.append(record)

        loop = loop_for(topic, group, publisher, batch=batch, single=single, commit_interval_seconds=FOREVER,
                        max_batch=5)
        async with running(loop) as task:
            await asyncio.wait({task}, timeout=30)
        assert isinstance(task.exception(), Unavailable)
        assert [len(b) for b in seen.batches] == [5, 5, 5]
        assert seen.numbers() == list(range(10))
        assert committed_during_third_batch == {}  # two batches handled, not one commit yet
        assert await committed(group, topic) == {0: 10}  # the batches handled before the failure, on the way out

        # the same group starts again at the batch that failed
        again = Seen()

        async def batch_again(records: Sequence[ConsumedRecord]) -> None:
            again.handled.extend(records)

        async with running(loop_for(topic, group, publisher, batch=batch_again, single=single)):
            await again.until(10)
        assert again.numbers() == list(range(10, 20))
        assert seen.singles == []


async def test_a_poison_record_in_a_batch_goes_to_the_dlq_alone_and_its_batch_mates_are_handled_one_by_one() -> None:
    async with topic_with_publisher("batches-poison") as (topic, publisher):
        await publish_numbers(publisher, topic, range(10))
        poison = 5
        seen = Seen()
        failed_batches: list[list[int]] = []
        poison_tries = 0

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            numbers = [number(record) for record in records]
            if poison in numbers:
                failed_batches.append(numbers)
                raise ValueError("cannot store one of them")
            seen.batches.append(list(records))
            seen.handled.extend(records)

        async def single(record: ConsumedRecord) -> None:
            nonlocal poison_tries
            if number(record) == poison:
                poison_tries += 1
                raise ValueError("cannot store this one")
            seen.singles.append(record)
            seen.handled.append(record)

        async with running(loop_for(topic, group_name(), publisher, batch=batch, single=single)) as task:
            await seen.until(9)
        assert task.exception() is None
        assert seen.numbers() == [n for n in range(10) if n != poison]  # every other record once, in order
        [failed] = failed_batches  # not retried as a batch
        assert len(failed) > 1
        assert [number(record) for record in seen.singles] == [n for n in failed if n != poison]
        assert poison_tries == 3  # the usual retries, then the dead letter

        dead = await KafkaTools(test_infra().kafka_bootstrap).read_all(f"{topic}.dlq")
        assert [EventEnvelope.from_bytes(record.value).data["n"] for record in dead] == [poison]
        headers = {k: v.decode() for k, v in dead[0].headers}
        assert headers["x-error-type"] == "ValueError" and headers["x-attempts"] == "3"
        assert headers["x-original-topic"] == topic and headers["x-original-offset"] == str(poison)


async def test_a_record_that_is_no_envelope_is_dead_lettered_and_left_out_of_its_batch() -> None:
    async with topic_with_publisher("batches-undecodable") as (topic, publisher):
        [first] = await publish_numbers(publisher, topic, [0])
        await publisher.publish(topic, key=b"k", value=b"{not an envelope", headers={"tenant-id": "t1"})
        rest = await publish_numbers(publisher, topic, [1, 2])
        seen = Seen()

        async def batch(records: Sequence[ConsumedRecord]) -> None:
            seen.batches.append(list(records))
            seen.handled.extend(records)

        async def single(record: ConsumedRecord) -> None:
            seen.singles.append(record)

        async with running(loop_for(topic, group_name(), publisher, batch=batch, single=single)) as task:
            await seen.until(3)
        assert task.exception() is None
        assert [record.envelope for record in seen.handled] == [first, *rest]
        assert [record.offset for record in seen.handled] == [0, 2, 3]
        assert seen.singles == []

        dead = await KafkaTools(test_infra().kafka_bootstrap).read_all(f"{topic}.dlq")
        assert [record.value for record in dead] == [b"{not an envelope"]
        headers = {k: v.decode() for k, v in dead[0].headers}
        assert headers["x-error-type"] == "ValidationError" and headers["x-attempts"] == "1"
        assert headers["x-original-offset"] == "1" and headers["tenant-id"] == "t1"


async def test_publish_batch_reports_the_acknowledged_prefix_and_the_error_of_the_first_record_refused() -> None:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("publish-batch")
    await create_topics(bootstrap, topic, partitions=3)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        records = [OutgoingRecord(topic, f"k{n % 4}".encode(), str(n).encode(), {"n": str(n)}) for n in range(30)]
        assert await publisher.publish_batch(records) == (30, None)
        assert await publisher.publish_batch([]) == (0, None)

        too_large = OutgoingRecord(topic, b"k0", b"x" * (MAX_MESSAGE_BYTES + 1), {})
        after = [OutgoingRecord(topic, b"k1", b"after", {})]
        acknowledged, error = await publisher.publish_batch([*records[:2], too_large, *after])
        assert acknowledged == 2 and isinstance(error, MessageSizeTooLargeError)
        assert await publisher.publish_batch(after) == (1, None)  # the publisher still works

        stored = await KafkaTools(bootstrap).read_all(topic)
        for key in (b"k0", b"k1", b"k2", b"k3"):  # per key, in the order given; the refused one and the rest not
            expected = [r.value for r in [*records, *records[:2], *after] if r.key == key]
            assert [record.value for record in stored if record.key == key] == expected
        assert {k: v.decode() for k, v in stored[0].headers}["n"] == stored[0].value.decode()
    finally:
        await publisher.stop()
