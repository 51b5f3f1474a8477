"""Idempotent Kafka producer (acks=all), sized for 3 MB webhook deliveries, carrying trace context in headers.

A broker restart must not break a publisher for good. aiokafka's idempotent producer numbers the batches of each
partition; when a batch fails without reaching the log (e.g. it waited longer than `request_timeout_ms` while the
broker, shutting down, reported no leader for its partition), its sequence number is used up and every later batch
of that partition is refused with OutOfOrderSequenceNumber, forever: aiokafka never resets the producer id as the
Java client does. So a `KafkaPublisher` replaces its producer after a failed publish (a new producer id, sequences
from 0), and sends a record refused for its producer's state once more with a fresh producer. Every publish is
bounded by `request_timeout_ms`, so a caller never waits on a broker that went away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from eva_events.envelope import EventEnvelope
from eva_events.topics import MAX_MESSAGE_BYTES

from eva_common.metrics import KAFKA_PUBLISHED
from eva_common.telemetry import inject_carrier

logger = logging.getLogger("eva.kafka.publisher")

# The broker refused the producer's state, not the record: a fresh producer can send it.
PRODUCER_STATE_ERRORS: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, InvalidProducerIdMapping, ProducerFenced,
    ProducerClosed,
)
CLOSE_SECONDS = 10.0


class EventPublisher(Protocol):
    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None: ...


class KafkaPublisher:
    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        request_timeout_ms: int = 10_000,
        retry_backoff_ms: int = 100,
        metadata_max_age_ms: int = 60_000,
    ) -> None:
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap, "client_id": client_id, "enable_idempotence": True, "acks": "all",
            "max_request_size": MAX_MESSAGE_BYTES, "request_timeout_ms": request_timeout_ms,
            "retry_backoff_ms": retry_backoff_ms, "metadata_max_age_ms": metadata_max_age_ms, "linger_ms": 2,
        }
        self._timeout = request_timeout_ms / 1000
        self._producer: Any = None  # AIOKafkaProducer (untyped)
        self._connecting = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._started = False
        self.replacements = 0  # producers replaced after a failure (observability and tests)

    async def _connect(self) -> Any:
        producer = AIOKafkaProducer(**self._options)
        try:
            # start() waits for a producer id without a deadline of its own
            await asyncio.wait_for(producer.start(), self._timeout)
        except BaseException:
            await self._close(producer)  # release the half-open client before the error propagates
            raise
        return producer

    async def start(self) -> None:
        async with self._connecting:
            if self._producer is None:
                self._producer = await self._connect()
        self._started = True

    async def _current(self) -> Any:
        producer = self._producer
        if producer is not None:
            return producer
        if not self._started:
            raise RuntimeError("KafkaPublisher.start() was not called")
        async with self._connecting:
            if self._producer is None:
                self._producer = await self._connect()
            return self._producer

    def _retire(self, producer: Any, error: BaseException) -> None:
        """Drops a producer after a failure: the next publish connects a new one; this one closes meanwhile."""
        if self._producer is not producer:
            return
        self._producer = None
        self.replacements += 1
        logger.warning("kafka producer replaced after a failed publish", extra={"error": repr(error)[:300]})
        task = asyncio.create_task(self._close(producer), name="kafka-producer-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(producer: Any, *, flush: bool = False) -> None:
        """Closes a producer. Records still waiting in a retired one belong to publishes that already failed (their
        callers send them again): they are failed at once instead of flushed to a broker that may not come back for a
        while. On `stop()` they get CLOSE_SECONDS to reach the broker first."""
        closing = asyncio.ensure_future(producer.stop())
        if flush:
            await asyncio.wait({closing}, timeout=CLOSE_SECONDS)
        if not closing.done():
            accumulator = getattr(producer, "_message_accumulator", None)  # aiokafka has no public "abandon"
            if accumulator is not None:
                accumulator.fail_all(ProducerClosed())
        try:
            await asyncio.wait_for(closing, CLOSE_SECONDS)
        except Exception as error:  # closing is best effort: the producer is gone either way
            logger.warning("kafka producer did not close cleanly", extra={"error": repr(error)[:300]})

    async def stop(self) -> None:
        self._started = False
        async with self._connecting:
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer, flush=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Returns once the broker acknowledged the record (all in-sync replicas); raises within about
        `request_timeout_ms` otherwise."""
        merged = {**inject_carrier(), **(headers or {})}
        encoded = [(k, v.encode()) for k, v in merged.items()]
        for attempt in (1, 2):
            producer = await self._current()
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(topic, value=value, key=key, headers=encoded), self._timeout)
            except PRODUCER_STATE_ERRORS as error:
                self._retire(producer, error)
                if attempt == 2:
                    raise
                continue  # never written: a new producer id sends it again
            except Exception as error:
                self._retire(producer, error)
                raise
            KAFKA_PUBLISHED.labels(topic).inc()
            return

    async def publish_event(self, topic: str, event: EventEnvelope, *, key: str) -> None:
        await self.publish(
            topic,
            key=key.encode(),
            value=event.to_bytes(),
            headers={"event-id": event.id, "event-type": event.type, "tenant-id": event.tenant_id},
        )

    async def ready(self, topic: str, timeout: float = 2.0) -> bool:
        """Kafka knows the topic's partitions (reconnecting a producer replaced after a failure)."""
        async def probe() -> bool:
            producer = await self._current()
            partitions: Any = await producer.partitions_for(topic)
            return bool(partitions)

        try:
            return await asyncio.wait_for(probe(), timeout)
        except Exception:
            return False


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
