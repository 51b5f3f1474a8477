"""A consumer loop that commits an offset only after its record was handled.

Each record's EventEnvelope is decoded once, before its handler runs (`ConsumedRecord.event()`); a record that is no
envelope goes straight to `<topic>.dlq` with the decoding error in its headers (`envelopes=False` for raw records).

Transient failures (a dependency down) are retried without end and block the partition, so nothing is skipped
and order is kept; any other failure is retried a few times, then the record goes to `<topic>.dlq` with the
error in its headers, and the loop moves on.

With `concurrency` > 1, up to that many consecutive records of a partition are handled at the same time (for
handlers that are safe to run concurrently, such as messaging's, which stores each message once and moves statuses
only forward); the offset after a window is committed once every record of the window is done, so a crash redelivers
the unfinished window and never skips a record.

With a `batch_handler`, the records a fetch returned for a topic are handed over together, every assigned partition's
in its order (decoded; one that is no envelope is dead-lettered first), so a handler can write them in one transaction
and one Kafka round instead of one per record or per partition: the cost of a record then falls as the load rises.
(Events keyed by conversation spread over every partition: handed over a partition at a time, a fetch at 100 events/s
was one transaction per event.) A handler keeps the order of the records of one key, which share a partition. A
transient failure retries the batch (the partitions wait, order is kept); any other failure hands the batch's records
to `handler` one at a time, with the usual retries and dead letters, so one bad record never holds back
or dead-letters the others. Both must be idempotent.

Offsets are committed at most every `commit_interval_seconds` (and when the partitions go quiet, and when the loop
stops), not after every record: a commit is a broker round trip and a write to `__consumer_offsets`, which cost the
broker more than the record did. A crash redelivers what was handled since the last commit; handlers are idempotent
(they claim event ids, store once per wamid), so that costs a duplicate look-up, never a duplicate effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from eva_events.envelope import EventEnvelope
from eva_events.topics import MAX_MESSAGE_BYTES, dlq
from opentelemetry import context as otel_context
from opentelemetry import trace

from eva_common.db import is_retryable_conflict
from eva_common.errors import DeadlineExceeded, Unavailable
from eva_common.kafka.lag import LagGauge
from eva_common.kafka.publisher import EventPublisher
from eva_common.metrics import KAFKA_CONSUMED, KAFKA_HANDLE_LATENCY
from eva_common.telemetry import extract_context

logger = logging.getLogger("eva.kafka")


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    timestamp_ms: int
    envelope: EventEnvelope | None = None  # decoded once by the ConsumerLoop (envelopes=True)

    def event(self) -> EventEnvelope:
        """The record's EventEnvelope: the one the loop decoded, else decoded now (a record built by hand)."""
        return self.envelope if self.envelope is not None else EventEnvelope.from_bytes(self.value)


Handler = Callable[[ConsumedRecord], Awaitable[None]]
BatchHandler = Callable[[Sequence[ConsumedRecord]], Awaitable[None]]


def _record(message: Any) -> ConsumedRecord:
    return ConsumedRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers={k: v.decode("latin-1") for k, v in (message.headers or ()) if v is not None},
        timestamp_ms=message.timestamp,
    )


def _producer_links(records: Sequence[ConsumedRecord]) -> list[trace.Link]:
    """A batch's span links to the traces its records carry (each record's producer), so a batch is found from any
    of the messages in it."""
    links: list[trace.Link] = []
    for record in records:
        if "traceparent" in record.headers:
            context = trace.get_current_span(extract_context(record.headers)).get_span_context()
            if context.is_valid:
                links.append(trace.Link(context))
    return links


def describe(error: BaseException) -> str:
    """The error without the SQL parameters SQLAlchemy would print (they can hold guests' messages)."""
    original = getattr(error, "orig", None)
    shown = original if isinstance(original, BaseException) else error
    return f"{type(error).__name__}: {str(shown).splitlines()[0][:300] if str(shown) else ''}"


def is_transient(error: BaseException) -> bool:
    """Failures that say "try again later", not "this record is bad"."""
    if isinstance(error, Unavailable | DeadlineExceeded | ConnectionError | TimeoutError | OSError | KafkaError):
        return True
    module = type(error).__module__
    name = type(error).__name__
    if module.startswith("sqlalchemy") and name in {"OperationalError", "InterfaceError", "DisconnectionError"}:
        return True
    if module.startswith("asyncpg") and ("Connection" in name or "CannotConnect" in name):
        return True
    return is_retryable_conflict(error)


class ConsumerLoop:
    def __init__(
        self,
        *,
        bootstrap: str,
        topics: Iterable[str],
        group_id: str,
        handler: Handler,
        dead_letters: EventPublisher,
        max_attempts: int = 3,
        retry_backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 5.0,
        concurrency: int = 1,
        envelopes: bool = True,
        commit_interval_seconds: float = 0.5,
        batch_handler: BatchHandler | None = None,
        max_batch: int = 100,
        lag_interval_seconds: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._commit_interval = commit_interval_seconds
        self._batch_handler = batch_handler
        self._max_batch = max_batch
        self._envelopes = envelopes
        self._topics = list(topics)
        self._group_id = group_id
        self._handler = handler
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._backoff = retry_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            max_poll_interval_ms=300_000,
        )
        self._lag = LagGauge(self._consumer, group_id=group_id, interval_seconds=lag_interval_seconds)
        self._stopping = asyncio.Event()
        self.last_progress = time.monotonic()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        self._lag.clear()
        try:
            await asyncio.wait_for(self._consumer.stop(), 10)
        except TimeoutError:
            logger.warning("consumer stop timed out", extra={"group": self._group_id})

    async def run(self) -> None:
        pending: dict[TopicPartition, int] = {}  # handled, not yet committed: partition -> next offset
        last_commit = time.monotonic()
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
                fetched = bool(batches)
                self.last_progress = time.monotonic()
                if self._batch_handler is not None:
                    if not await self._handle_fetch(batches, pending):
                        return
                    batches = {}
                for partition, messages in batches.items():
                    records = [_record(message) for message in messages]
                    for start in range(0, len(records), self._concurrency):
                        if self._stopping.is_set():
                            return
                        if partition not in self._consumer.assignment():
                            pending.pop(partition, None)
                            break  # revoked by a rebalance: its new owner resumes from the committed offset
                        window = records[start:start + self._concurrency]
                        await self._handle_window(window)
                        pending[partition] = window[-1].offset + 1
                if pending and (not fetched or time.monotonic() - last_commit >= self._commit_interval):
                    await self._commit(pending)
                    last_commit = time.monotonic()
                await self._lag.sample()
        finally:
            if pending:
                with contextlib.suppress(Exception):  # best effort: what is not committed is delivered again
                    await self._commit(pending)
            await self.close()

    async def _handle_fetch(self, batches: dict[TopicPartition, list[Any]], pending: dict[TopicPartition, int]) -> bool:
        """Hands a fetch's records to the batch handler, a topic at a time, every still-assigned partition's records
        together; notes the offsets to commit. False when the loop is stopping."""
        by_topic: dict[str, list[tuple[TopicPartition, list[ConsumedRecord]]]] = {}
        for partition, messages in batches.items():
            if messages:
                by_topic.setdefault(partition.topic, []).append((partition, [_record(m) for m in messages]))
        for parts in by_topic.values():
            if self._stopping.is_set():
                return False
            assigned = self._consumer.assignment()
            for partition, _ in parts:
                if partition not in assigned:
                    pending.pop(partition, None)  # revoked by a rebalance: its new owner resumes from the commit
            live = [(partition, records) for partition, records in parts if partition in assigned]
            if not live:
                continue
            await self._handle_batch([record for _, records in live for record in records])
            for partition, records in live:
                pending[partition] = records[-1].offset + 1
        return True

    async def _commit(self, pending: dict[TopicPartition, int]) -> None:
        """Commits the handled offsets of the partitions still assigned. When the group rebalanced meanwhile (after a
        broker restart, say) the records are handled again by the partition's owner, which handlers tolerate (at
        least once)."""
        assigned = self._consumer.assignment()
        offsets = {partition: offset for partition, offset in pending.items() if partition in assigned}
        pending.clear()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            logger.warning("offsets not committed: the group rebalanced; the records will be delivered again",
                           extra={"offsets": {f"{p.topic}/{p.partition}": o for p, o in offsets.items()},
                                  "group": self._group_id, "error": describe(error)})

    async def _handle_batch(self, records: list[ConsumedRecord]) -> None:
        assert self._batch_handler is not None
        decoded: list[ConsumedRecord] = []
        for record in records:
            if not self._envelopes or record.envelope is not None:
                decoded.append(record)
                continue
            try:
                decoded.append(replace(record, envelope=EventEnvelope.from_bytes(record.value)))
            except ValueError as error:  # pydantic's ValidationError: no retry can decode it
                await self._dead_letter_until_sent(record, error, 1)
                KAFKA_CONSUMED.labels(record.topic, "dead_lettered").inc()
        if not decoded:
            return
        topic = decoded[0].topic
        links = _producer_links(decoded)
        delay = self._backoff
        while True:
            started = time.perf_counter()
            try:
                with trace.get_tracer("eva.kafka").start_as_current_span(
                    f"consume {topic}", kind=trace.SpanKind.CONSUMER, links=links,
                    attributes={"messaging.batch.message_count": len(decoded)},
                ):
                    await self._batch_handler(decoded)
                KAFKA_CONSUMED.labels(topic, "ok").inc(len(decoded))
                return
            except Exception as error:
                if not is_transient(error):
                    logger.warning("batch handling failed; handling its records one by one",
                                   extra={"topic": topic, "records": len(decoded), "error": describe(error)})
                    for record in decoded:
                        await self._handle(record)
                    return
                KAFKA_CONSUMED.labels(topic, "retried").inc(len(decoded))
                logger.warning("batch handling failed; retrying", extra={
                    "topic": topic, "offset": decoded[0].offset, "records": len(decoded), "transient": True,
                    "error": describe(error)})
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
            finally:
                KAFKA_HANDLE_LATENCY.labels(topic).observe(time.perf_counter() - started)

    async def _handle_window(self, window: list[ConsumedRecord]) -> None:
        if len(window) == 1:
            await self._handle(window[0])
            return
        outcomes = await asyncio.gather(*(self._handle(record) for record in window), return_exceptions=True)
        for outcome in outcomes:  # a handler gives up only when the loop stops: nothing is committed then
            if isinstance(outcome, BaseException):
                raise outcome

    async def _handle(self, record: ConsumedRecord) -> None:
        if self._envelopes and record.envelope is None:
            try:
                record = replace(record, envelope=EventEnvelope.from_bytes(record.value))
            except ValueError as error:  # pydantic's ValidationError: no retry can decode it
                await self._dead_letter_until_sent(record, error, 1)
                KAFKA_CONSUMED.labels(record.topic, "dead_lettered").inc()
                return
        attempt = 0
        delay = self._backoff
        while True:
            attempt += 1
            token = otel_context.attach(extract_context(record.headers))
            started = time.perf_counter()
            try:
                with trace.get_tracer("eva.kafka").start_as_current_span(
                    f"consume {record.topic}", kind=trace.SpanKind.CONSUMER
                ):
                    await self._handler(record)
                KAFKA_CONSUMED.labels(record.topic, "ok").inc()
                return
            except Exception as error:
                transient = is_transient(error)
                if not transient and attempt >= self._max_attempts:
                    await self._dead_letter_until_sent(record, error, attempt)
                    KAFKA_CONSUMED.labels(record.topic, "dead_lettered").inc()
                    return
                KAFKA_CONSUMED.labels(record.topic, "retried").inc()
                logger.warning(
                    "record handling failed; retrying",
                    extra={"topic": record.topic, "offset": record.offset, "attempt": attempt,
                           "transient": transient, "error": describe(error)},
                )
                if self._stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
            finally:
                KAFKA_HANDLE_LATENCY.labels(record.topic).observe(time.perf_counter() - started)
                otel_context.detach(token)

    async def _dead_letter_until_sent(self, record: ConsumedRecord, error: BaseException, attempts: int) -> None:
        """Dead-letters the record, retrying while Kafka cannot take it (the offset waits for it)."""
        delay = self._backoff
        while True:
            try:
                await self._dead_letter(record, error, attempts)
                return
            except Exception as failure:
                if self._stopping.is_set():
                    raise
                logger.warning("dead letter not published; retrying",
                               extra={"topic": record.topic, "offset": record.offset, "error": describe(failure)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _dead_letter(self, record: ConsumedRecord, error: BaseException, attempts: int) -> None:
        logger.error(
            "record sent to the dead-letter topic",
            extra={"topic": record.topic, "offset": record.offset, "error": describe(error)},
        )
        headers = {
            **record.headers,
            "x-error": describe(error),
            "x-error-type": type(error).__name__,
            "x-original-topic": record.topic,
            "x-original-partition": str(record.partition),
            "x-original-offset": str(record.offset),
            "x-attempts": str(attempts),
            "x-consumer-group": self._group_id,
        }
        await self._dead_letters.publish(dlq(record.topic), key=record.key, value=record.value, headers=headers)

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())
