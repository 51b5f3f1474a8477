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
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]


class BatchPublisher(EventPublisher, Protocol):
    async def publish_batch(self, records: Sequence[OutgoingRecord]) -> tuple[int, BaseException | None]: ...


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    """Marks a connection attempt's failure as seen (every caller may have given up waiting for it)."""
    if not task.cancelled():
        task.exception()


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
        self._connecting: asyncio.Task[Any] | None = None
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
        if not self._started:  # stopped meanwhile
            await self._close(producer)
            raise ProducerClosed()
        self._producer = producer
        return producer

    async def _current(self) -> Any:
        """The connected producer, connecting one when there is none. The attempt runs as a task of its own that
        every caller shares: a caller giving up (a request's deadline) never cancels it for the others, so a
        connection that needs longer than one caller's deadline is still made."""
        if self._producer is not None:
            return self._producer
        if not self._started:
            raise RuntimeError("KafkaPublisher.start() was not called")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect(), name="kafka-producer-connect")
            self._connecting.add_done_callback(_consume_outcome)
        return await asyncio.shield(self._connecting)

    async def start(self) -> None:
        """Connects a producer; raises when Kafka cannot be reached (call again to retry)."""
        self._started = True
        try:
            await self._current()
        except BaseException:
            self._started = False
            raise

    def start_in_background(self) -> None:
        """Starts connecting and returns at once: a service that must come up while Kafka is away (its requests
        answer 503 meanwhile, a dead letter waits) publishes through a producer connected on first use; a failed
        attempt is made again by the next publish or readiness check."""
        self._started = True
        if self._producer is None and (self._connecting is None or self._connecting.done()):
            self._connecting = asyncio.create_task(self._connect(), name="kafka-producer-connect")
            self._connecting.add_done_callback(_consume_outcome)

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
        """Closes a producer. On `stop()` its buffered records get CLOSE_SECONDS to reach the broker. Records still
        waiting in a retired producer belong to publishes that already failed (their callers send them again): they
        are dropped at once instead of being retried against a broker that may not come back for a while."""
        if flush:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.flush(), CLOSE_SECONDS)
        # aiokafka has no public way to abandon what is buffered: stop its sender first (so nothing is retried or
        # re-queued any more), then fail the records left, then stop() has nothing to wait for
        sender = getattr(producer, "_sender", None)
        routine = getattr(sender, "sender_task", None)
        if routine is not None and not routine.done():
            routine.cancel()
            await asyncio.wait({routine}, timeout=CLOSE_SECONDS)
        accumulator = getattr(producer, "_message_accumulator", None)
        if accumulator is not None:
            accumulator.fail_all(ProducerClosed())
        try:
            await asyncio.wait_for(producer.stop(), CLOSE_SECONDS)
        except Exception as error:  # closing is best effort: the producer is gone either way
            logger.warning("kafka producer did not close cleanly", extra={"error": repr(error)[:300]})
            with contextlib.suppress(Exception):
                await producer.client.close()

    async def stop(self) -> None:
        self._started = False
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            await asyncio.wait({connecting})
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

    async def publish_batch(self, records: Sequence[OutgoingRecord]) -> tuple[int, BaseException | None]:
        """Sends the records together (they share the producer's batches: a few broker requests instead of one
        acknowledged round trip each) and waits for their acknowledgements, within `request_timeout_ms` in all.
        Returns how many records, from the first, were acknowledged, and the error of the first one that was not
        (None when all were): the caller sends that one and the rest again, so order holds and nothing is lost
        (a record that landed after all is a duplicate, which consumers drop by event id)."""
        if not records:
            return 0, None
        carrier = inject_carrier()
        futures: list[asyncio.Future[Any]] = []
        producer: Any = None
        error: BaseException | None = None
        try:
            producer = await self._current()
            for record in records:
                merged = {**carrier, **record.headers}
                futures.append(await producer.send(
                    record.topic, value=record.value, key=record.key,
                    headers=[(k, v.encode()) for k, v in merged.items()]))
        except Exception as refused:  # not queued (no producer, a record too large, the buffer full for too long)
            error = refused
        if futures:
            await asyncio.wait(futures, timeout=self._timeout)
        acknowledged = 0
        for record, future in zip(records, futures, strict=False):
            if not future.done():
                error = TimeoutError(f"no acknowledgement within {self._timeout:g} s")
                break
            failure = asyncio.CancelledError() if future.cancelled() else future.exception()
            if failure is not None:
                error = failure
                break
            acknowledged += 1
            KAFKA_PUBLISHED.labels(record.topic).inc()
        for future in futures[acknowledged:]:  # the outcomes of the records given up on are seen, not logged
            future.add_done_callback(_consume_outcome)
        if error is not None and producer is not None:
            self._retire(producer, error)
        return acknowledged, error

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
