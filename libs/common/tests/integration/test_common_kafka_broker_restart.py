"""A KafkaPublisher and a ConsumerLoop keep working across a real broker restart, on a broker of the test's own
(started with scripts/infra.py's functions on free ports, in .local/<its own name>/, removed afterwards), so the
shared test broker is never disturbed.

The publisher is busy while the broker shuts down: the broker reports no leader for the partition, a batch waits
longer than request_timeout_ms and expires, and aiokafka's idempotent producer has then used up a sequence number
that never reached the log; before the publisher replaced such a producer, every later publish to the partition was
refused with OutOfOrderSequenceNumber, for ever.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eva_common.kafka.consumer import ConsumedRecord, ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_testing.kafka import create_topics

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "scripts"))
import infra  # noqa: E402  (scripts/infra.py, stdlib only)

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_MS = 3_000
DOWN_SECONDS = 5.0  # longer than the request timeout: a batch held back for want of a leader expires
SAFETY_NET = 120.0  # only against a hang: each wait below ends as soon as its condition holds


def free_port() -> int:
    """A free local port below 32768 (outside Linux's ephemeral range, as docs/conventions.md asks)."""
    for _ in range(100):
        port = 22_000 + secrets.randbelow(10_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


@dataclass
class Broker:
    profile: infra.Profile

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.profile.kafka_port}"

    def start(self) -> None:
        infra.kafka_wait(self.profile, infra.kafka_start(self.profile))

    def stop(self) -> None:
        infra.kafka_down(self.profile)


@pytest.fixture
def broker() -> Iterator[Broker]:
    kafka_port = free_port()
    controller_port = free_port()
    while controller_port == kafka_port:
        controller_port = free_port()
    profile = infra.Profile(name=f"kafka-restart-{uuid.uuid4().hex[:8]}", pg_port=0, redis_port=0,
                            kafka_port=kafka_port, kafka_controller_port=controller_port)
    own = Broker(profile)
    try:
        own.start()
        yield own
    finally:
        infra.kafka_down(profile)
        shutil.rmtree(profile.root, ignore_errors=True)


class Recorder:
    """What the consumer loop handled, in order, with a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.changed = asyncio.Condition()

    async def handle(self, record: ConsumedRecord) -> None:
        async with self.changed:
            self.values.append(record.value)
            self.changed.notify_all()

    async def wait_for_all(self, expected: list[bytes]) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: set(expected) <= set(self.values))


def in_order(sub: list[bytes], full: list[bytes]) -> bool:
    """`sub` appears in `full` in the same order (other values may come between)."""
    remaining = iter(full)
    return all(any(value == seen for seen in remaining) for value in sub)


async def test_a_publisher_and_a_consumer_loop_keep_working_across_a_broker_restart(broker: Broker) -> None:
    topic = f"restart.{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap, topic, f"{topic}.dlq", partitions=1)
    publisher = KafkaPublisher(broker.bootstrap, client_id="restart-test", request_timeout_ms=REQUEST_TIMEOUT_MS)
    await publisher.start()
    recorder = Recorder()
    loop = ConsumerLoop(bootstrap=broker.bootstrap, topics=[topic], group_id=f"restart-{uuid.uuid4().hex[:6]}",
                        handler=recorder.handle, dead_letters=publisher, retry_backoff_seconds=0.05,
                        envelopes=False)
    await loop.start()
    consuming = asyncio.create_task(loop.run())
    acked: list[bytes] = []
    acked_changed = asyncio.Condition()
    stop_publishing = asyncio.Event()

    async def keep_publishing() -> None:
        """Publishes a new value every ~50 ms, whatever happens to the broker; records which were acknowledged."""
        number = 0
        while not stop_publishing.is_set():
            value = f"record {number}".encode()
            number += 1
            try:
                await publisher.publish(topic, key=b"one-key", value=value)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            async with acked_changed:
                acked.append(value)
                acked_changed.notify_all()
            await asyncio.sleep(0.05)

    async def acked_beyond(count: int) -> None:
        async with acked_changed:
            await acked_changed.wait_for(lambda: len(acked) >= count)

    publishing = asyncio.create_task(keep_publishing())
    try:
        await asyncio.wait_for(acked_beyond(5), SAFETY_NET)
        await asyncio.wait_for(recorder.wait_for_all(list(acked)), SAFETY_NET)

        await asyncio.to_thread(broker.stop)  # while a publish is in flight
        before_restart = len(acked)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(broker.start)

        # publishing works again: new records are acknowledged, and the loop handles every acknowledged one
        await asyncio.wait_for(acked_beyond(before_restart + 20), SAFETY_NET)
        stop_publishing.set()
        await asyncio.wait_for(publishing, SAFETY_NET)
        await asyncio.wait_for(recorder.wait_for_all(list(acked)), SAFETY_NET)
    finally:
        stop_publishing.set()
        await loop.stop()
        await asyncio.wait_for(consuming, 30)
        if not publishing.done():
            publishing.cancel()
        await publisher.stop()

    assert in_order(acked, recorder.values)  # one key, one partition: acknowledged records are handled in order
    assert publisher.replacements >= 1  # the producer that was publishing when the broker stopped was replaced
