"""Waiting for eventual consistency in tests, and reading Kafka topics whole (real broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

Probe = Callable[[], Awaitable[Any]]


async def eventually(probe: Probe, *, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Polls `probe` until it returns something truthy; fails with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")



class KafkaTools:
    """Produces records and reads whole topics (from the beginning up to their current end)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def produce(self, topic: str, value: bytes, *, key: bytes | None = None) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()

    async def read_all(self, topic: str) -> list[ConsumerRecord]:
        """Every record the topic holds right now."""
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()  # with no group, the consumer takes every partition of the topic
        try:
            partitions = sorted(consumer.assignment())
            if not partitions:  # not in the metadata yet: nothing to read
                return []
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            records: list[ConsumerRecord] = []
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, batch in batches.items():
                    records.extend(record for record in batch if record.offset < end[tp])
            return records
        finally:
            await consumer.stop()

    async def wait_for(
        self, topic: str, predicate: Callable[[list[ConsumerRecord]], bool], timeout: float = 60.0
    ) -> list[ConsumerRecord]:
        async def probe() -> list[ConsumerRecord] | None:
            records = await self.read_all(topic)
            return records if predicate(records) else None

        result: list[ConsumerRecord] = await eventually(probe, timeout=timeout, interval=0.2)
        return result
