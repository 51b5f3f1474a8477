"""ConsumerLoop against the real broker: commits only after success, retries transient failures without loss,
sends poison records to <topic>.dlq with the error in headers and moves on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from eva_common.errors import Unavailable
from eva_common.kafka.consumer import ConsumedRecord, ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_events.envelope import EventEnvelope, make_event
from eva_testing.infra import test_infra
from eva_testing.kafka import create_topics, unique_topic

pytestmark = pytest.mark.integration


async def run_loop(topic: str, group: str, handler, publisher: KafkaPublisher, until,  # type: ignore[no-untyped-def]
                   concurrency: int = 1, envelopes: bool = False) -> None:
    loop = ConsumerLoop(bootstrap=test_infra().kafka_bootstrap, topics=[topic], group_id=group, handler=handler,
                        dead_letters=publisher, retry_backoff_seconds=0.01, concurrency=concurrency,
                        envelopes=envelopes)
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(until(), 30)
    finally:
        await loop.stop()
        await asyncio.wait_for(task, 15)


async def test_poison_goes_to_dlq_transient_is_retried_and_order_is_kept() -> None:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("loop")
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        for value in (b"one", b"poison", b"flaky", b"four"):
            await publisher.publish(topic, key=b"k", value=value, headers={"tenant-id": "t1"})
        handled: list[bytes] = []
        flaky_failures = 0
        done = asyncio.Event()

        async def handler(record: ConsumedRecord) -> None:
            nonlocal flaky_failures
            if record.value == b"poison":
                raise ValueError("cannot parse")
            if record.value == b"flaky" and flaky_failures < 5:  # more than max_attempts: transient never DLQs
                flaky_failures += 1
                raise Unavailable("database restarting")
            handled.append(record.value)
            if len(handled) == 3:
                done.set()

        async def all_handled() -> None:
            await done.wait()

        group = f"g-{uuid.uuid4().hex[:6]}"
        await run_loop(topic, group, handler, publisher, all_handled)
        assert handled == [b"one", b"flaky", b"four"]
        assert flaky_failures == 5

        dlq = AIOKafkaConsumer(f"{topic}.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                               group_id=None)
        await dlq.start()
        try:
            record = await asyncio.wait_for(dlq.getone(), 15)
        finally:
            await dlq.stop()
        headers = {k: v.decode() for k, v in record.headers}
        assert record.value == b"poison"
        assert headers["x-error-type"] == "ValueError" and headers["x-original-topic"] == topic
        assert headers["x-attempts"] == "3" and headers["tenant-id"] == "t1"

        # Offsets were committed: the same group sees nothing again.
        seen_again: list[bytes] = []

        async def record_again(record: ConsumedRecord) -> None:
            seen_again.append(record.value)

        async def short_wait() -> None:
            await asyncio.sleep(3)

        await run_loop(topic, group, record_again, publisher, short_wait)
        assert seen_again == []
    finally:
        await publisher.stop()


async def test_a_concurrent_window_is_committed_only_when_all_of_it_is_done() -> None:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("loop-window")
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        for n in range(8):
            await publisher.publish(topic, key=b"k", value=str(n).encode())
        group = f"g-{uuid.uuid4().hex[:6]}"
        in_flight, most = 0, 0
        handled: list[bytes] = []
        first_window_done = asyncio.Event()

        async def slow(record: ConsumedRecord) -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0.2)
                if record.value == b"5":  # the second window cannot finish before the loop stops
                    raise Unavailable("database restarting")
                handled.append(record.value)
                if len(handled) == 4:
                    first_window_done.set()
            finally:
                in_flight -= 1

        async def first_window_and_a_bit() -> None:
            await first_window_done.wait()
            await asyncio.sleep(1)

        with pytest.raises(Unavailable):  # still failing when the loop stops: its window is not committed
            await run_loop(topic, group, slow, publisher, first_window_and_a_bit, concurrency=4)
        assert most == 4  # four records of the partition at a time
        assert sorted(handled[:4]) == [b"0", b"1", b"2", b"3"]

        # offset 4 was never committed: the whole second window comes again, nothing of the first
        again: list[bytes] = []
        everything = asyncio.Event()

        async def record_again(record: ConsumedRecord) -> None:
            again.append(record.value)
            if len(again) == 4:
                everything.set()

        await run_loop(topic, group, record_again, publisher, everything.wait, concurrency=4)
        assert sorted(again) == [b"4", b"5", b"6", b"7"]
    finally:
        await publisher.stop()


async def test_envelopes_are_decoded_once_for_the_handler_and_a_record_that_is_none_goes_to_the_dlq_untried() -> None:
    bootstrap = test_infra().kafka_bootstrap
    topic = unique_topic("loop-envelopes")
    await create_topics(bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(bootstrap, client_id="test")
    await publisher.start()
    try:
        first = make_event("thing.happened", tenant_id="t1", data={"n": 1})
        last = make_event("thing.happened", tenant_id="t1", data={"n": 2})
        await publisher.publish_event(topic, first, key="k")
        await publisher.publish(topic, key=b"k", value=b"{not an envelope", headers={"tenant-id": "t1"})
        await publisher.publish_event(topic, last, key="k")
        received: list[ConsumedRecord] = []
        both = asyncio.Event()

        async def handler(record: ConsumedRecord) -> None:
            received.append(record)
            if len(received) == 2:
                both.set()

        await run_loop(topic, f"g-{uuid.uuid4().hex[:6]}", handler, publisher, both.wait, envelopes=True)
        sent = [EventEnvelope.from_bytes(event.to_bytes()) for event in (first, last)]  # times kept to the ms
        assert [record.envelope for record in received] == sent  # decoded by the loop, before the handler
        assert [record.event() for record in received] == sent

        dlq = AIOKafkaConsumer(f"{topic}.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                               group_id=None)
        await dlq.start()
        try:
            dead = await asyncio.wait_for(dlq.getone(), 15)
        finally:
            await dlq.stop()
        headers = {k: v.decode() for k, v in dead.headers}
        assert dead.value == b"{not an envelope"
        assert headers["x-error-type"] == "ValidationError" and headers["x-attempts"] == "1"
        assert headers["x-error"].startswith("ValidationError: ") and headers["x-original-offset"] == "1"
    finally:
        await publisher.stop()
