"""Idempotent Kafka producer (acks=all), sized for 3 MB webhook deliveries, carrying trace context in headers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from eva_events.envelope import EventEnvelope
from eva_events.topics import MAX_MESSAGE_BYTES

from eva_common.metrics import KAFKA_PUBLISHED
from eva_common.telemetry import inject_carrier


class EventPublisher(Protocol):
    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None: ...


class KafkaPublisher:
    def __init__(self, bootstrap: str, *, client_id: str, request_timeout_ms: int = 10_000) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=request_timeout_ms,
            linger_ms=2,
        )
        self._started = False

    async def start(self) -> None:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # release the half-open client before the error propagates
            raise
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Returns once the broker acknowledged the record (all in-sync replicas)."""
        merged = {**inject_carrier(), **(headers or {})}
        await self._producer.send_and_wait(
            topic, value=value, key=key, headers=[(k, v.encode()) for k, v in merged.items()]
        )
        KAFKA_PUBLISHED.labels(topic).inc()

    async def publish_event(self, topic: str, event: EventEnvelope, *, key: str) -> None:
        await self.publish(
            topic,
            key=key.encode(),
            value=event.to_bytes(),
            headers={"event-id": event.id, "event-type": event.type, "tenant-id": event.tenant_id},
        )

    async def ready(self, topic: str, timeout: float = 2.0) -> bool:
        partitions: Any = await asyncio.wait_for(self._producer.partitions_for(topic), timeout)
        return bool(partitions)


class LazyPublisher:
    """A producer connected on first use: the consumers' dead letters are rare, so start-up need not wait on it."""

    def __init__(self, *, bootstrap: str, client_id: str) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._publisher: KafkaPublisher | None = None
        self._lock = asyncio.Lock()

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        async with self._lock:
            if self._publisher is None:
                publisher = KafkaPublisher(self._bootstrap, client_id=self._client_id)
                await publisher.start()
                self._publisher = publisher
        await self._publisher.publish(topic, key=key, value=value, headers=headers)

    async def stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
