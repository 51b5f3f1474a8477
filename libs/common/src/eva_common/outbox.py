"""Transactional outbox: events are written in the same transaction as the change that caused them, and a
relay publishes them to Kafka afterwards (at least once; consumers dedupe on the event id).

One relay per service holds a PostgreSQL advisory lock, so events of one key keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import sqlalchemy as sa
from eva_events.envelope import EventEnvelope
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from eva_common.db import direct_transaction, driver
from eva_common.housekeeping import RELAY_ROLE, Retention, prune
from eva_common.kafka.publisher import BatchPublisher, OutgoingRecord
from eva_common.metrics import OUTBOX_OLDEST_UNSENT, OUTBOX_RELAYED, OUTBOX_UNSENT
from eva_common.telemetry import current_traceparent

logger = logging.getLogger("eva.outbox")

NOTIFY_CHANNEL = "outbox_new"
RELAY_LOCK_ID = 7_411_001  # one relay per database


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    topic: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    msg_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    payload: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    headers: dict[str, str] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


_ENQUEUE = (
    "WITH queued AS (INSERT INTO outbox (event_id, tenant_id, topic, msg_key, payload, headers, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6::json, $7) RETURNING 1) "
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM queued"
)


# A batch's events in one statement: the rows go in in the arrays' order (the relay publishes by id).
_ENQUEUE_MANY = (
    "WITH queued AS (INSERT INTO outbox (event_id, tenant_id, topic, msg_key, payload, headers, created_at) "
    "SELECT event_id, tenant_id, topic, msg_key, payload, headers::json, $7 FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::bytea[], $6::text[]) WITH ORDINALITY "
    "AS queued(event_id, tenant_id, topic, msg_key, payload, headers, position) ORDER BY position RETURNING 1) "
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM queued LIMIT 1"
)
_GATHERED = "eva.outbox.gathered"  # session.info key: the events `gathered` holds back


_UNSENT = ("SELECT id, topic, msg_key, payload, headers::text AS headers FROM outbox WHERE sent_at IS NULL "
           "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED")
_FAILED = "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1"
_SENT = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
# The backlog, on the partial index of unsent rows: the count stops at BACKLOG_COUNT_CAP (a sample stays cheap however
# far behind the relay is), the oldest is the lowest id's (ids grow with time).
BACKLOG_COUNT_CAP = 100_000
_BACKLOG = (
    f"SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE sent_at IS NULL LIMIT {BACKLOG_COUNT_CAP}) AS unsent) "
    "AS unsent, (SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 FROM outbox WHERE sent_at IS NULL "
    "ORDER BY id LIMIT 1) AS oldest_seconds"
)


async def enqueue(session: AsyncSession, *, topic: str, key: str, event: EventEnvelope) -> None:
    """Adds an event to the outbox inside the caller's transaction and wakes the relay when it commits: one
    statement, written directly (the hot path of every service). Inside `gathered`, the event waits for the
    others of the block and they go in together."""
    row = _row(topic, key, event)
    held: list[tuple[str, str, str, str, bytes, str]] | None = session.info.get(_GATHERED)
    if held is not None:
        held.append(row)
        return
    await (await driver(session)).execute(_ENQUEUE, *row, datetime.now(UTC))


@contextlib.asynccontextmanager
async def gathered(session: AsyncSession) -> AsyncIterator[None]:
    """The events enqueued in the block go to the outbox in one statement when it ends (in their order), instead of
    one statement each: for the consumers that write a fetch's worth of records in one transaction. Nothing is
    written when the block raises (the transaction is then rolled back anyway). Blocks do not nest: an inner one
    leaves its events to the outer. A block stays under one tenant's setting (row-level security checks the rows
    when they are written, at its end): in a transaction of several tenants, one block per tenant."""
    if session.info.get(_GATHERED) is not None:
        yield
        return
    held: list[tuple[str, str, str, str, bytes, str]] = []
    session.info[_GATHERED] = held
    try:
        yield
    finally:
        session.info.pop(_GATHERED, None)
    if len(held) == 1:
        await (await driver(session)).execute(_ENQUEUE, *held[0], datetime.now(UTC))
    elif held:
        columns = list(zip(*held, strict=True))
        await (await driver(session)).execute(_ENQUEUE_MANY, *map(list, columns), datetime.now(UTC))


def _row(topic: str, key: str, event: EventEnvelope) -> tuple[str, str, str, str, bytes, str]:
    if event.traceparent is None:
        event = event.model_copy(update={"traceparent": current_traceparent()})
    headers = {"event-id": event.id, "event-type": event.type, "tenant-id": event.tenant_id}
    return event.id, event.tenant_id, topic, key, event.to_bytes(), json.dumps(headers)


class OutboxRelay:
    def __init__(
        self, *, engine: AsyncEngine, publisher: BatchPublisher, batch_size: int = 100, poll_seconds: float = 0.5,
        listening_poll_seconds: float = 5.0, retention: Retention | None = None, prune_every_seconds: float = 300.0,
        backlog_sample_seconds: float = 10.0,
    ) -> None:
        self._engine = engine
        # the leader also deletes what is past its retention (eva_common.housekeeping), every prune_every_seconds
        self._retention = retention or Retention()
        self._prune_every = prune_every_seconds
        self._next_prune = 0.0
        self._pruning: asyncio.Task[None] | None = None
        # and samples the backlog (eva_outbox_unsent, eva_outbox_oldest_unsent_seconds) every backlog_sample_seconds
        self._backlog_every = backlog_sample_seconds
        self._backlog_sampled_at = float("-inf")
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll = poll_seconds
        # while the leader listens, every enqueue wakes it (pg_notify at commit): the poll is only the safety net,
        # and an idle relay costs a transaction per `listening_poll_seconds` instead of one per `poll_seconds`
        self._listening_poll = max(poll_seconds, listening_poll_seconds)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._pruning is not None and not self._pruning.done():
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._lead()
            except Exception:
                logger.exception("outbox relay failed; restarting")
                await self._sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _lead(self) -> None:
        async with self._engine.connect() as leader:
            locked = (await leader.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": RELAY_LOCK_ID}))
            await leader.commit()
            if not locked.scalar():
                await self._sleep(2.0)
                return
            raw = await leader.get_raw_connection()
            driver = raw.driver_connection

            def on_notify(*_: object) -> None:
                self._wake.set()

            # the pooled connection outlives this relay: the very callback added is the one removed (asyncpg
            # matches callbacks by identity), so the connection stops listening and holds no reference to the relay
            if driver is not None:
                await driver.add_listener(NOTIFY_CHANNEL, on_notify)
                # a lost connection (PostgreSQL restarted) hears nothing more: wake, and lead again on a new one
                driver.add_termination_listener(on_notify)
            idle_poll = self._poll if driver is None else self._listening_poll
            try:
                while not self._stopping.is_set():
                    if driver is not None and driver.is_closed():
                        raise ConnectionError("the outbox relay's listening connection was lost")
                    sent, failed = await self._relay()
                    await self._housekeeping()
                    await self._sample_backlog()
                    if failed:
                        await self._sleep(self._poll)  # the broker refused: try again soon, in order
                    elif sent < self._batch_size:
                        await self._sleep(idle_poll)
            finally:
                self._stop_reporting_backlog()
                if driver is not None:
                    driver.remove_termination_listener(on_notify)
                if driver is None or not driver.is_closed():  # a lost connection released its lock with it
                    if driver is not None:
                        await driver.remove_listener(NOTIFY_CHANNEL, on_notify)
                    await leader.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": RELAY_LOCK_ID})
                    await leader.commit()

    async def _housekeeping(self) -> None:
        """Starts a pass of housekeeping beside the relay when one is due: a first pass on a large table takes
        seconds, which must not hold events back."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_prune or (self._pruning is not None and not self._pruning.done()):
            return
        self._next_prune = loop.time() + self._prune_every
        self._pruning = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        try:
            await prune(self._engine, self._retention)
        except Exception:  # housekeeping never stops the relay; the next pass tries again
            logger.exception("outbox housekeeping failed")

    async def _sample_backlog(self) -> None:
        """`eva_outbox_unsent` and `eva_outbox_oldest_unsent_seconds`, at most every `backlog_sample_seconds`, by the
        relay that leads (the others report 0)."""
        now = asyncio.get_running_loop().time()
        if now - self._backlog_sampled_at < self._backlog_every:
            return
        self._backlog_sampled_at = now
        await self.sample_backlog()

    def _stop_reporting_backlog(self) -> None:
        """No longer leading: the backlog is the next leader's to report (a stale value here would keep an alert on
        `max` of the replicas firing); sampled again at once should this relay lead again."""
        OUTBOX_UNSENT.set(0)
        OUTBOX_OLDEST_UNSENT.set(0)
        self._backlog_sampled_at = float("-inf")

    async def sample_backlog(self) -> None:
        """Samples the backlog now."""
        async with direct_transaction(self._engine) as connection:
            await connection.execute(RELAY_ROLE)
            row = await connection.fetchrow(_BACKLOG)
        assert row is not None
        OUTBOX_UNSENT.set(row["unsent"])
        OUTBOX_OLDEST_UNSENT.set(row["oldest_seconds"] or 0.0)

    async def relay_once(self) -> int:
        """Publishes one batch of unsent events together, in order; returns how many were sent."""
        return (await self._relay())[0]

    async def _relay(self) -> tuple[int, bool]:
        """One batch: (events sent, whether the broker refused one). Written directly on asyncpg: every service runs
        it for every batch of events, and once per poll when idle."""
        async with direct_transaction(self._engine) as connection:
            await connection.execute(RELAY_ROLE)
            rows = await connection.fetch(_UNSENT, self._batch_size)
            acknowledged, error = await self._publisher.publish_batch([
                OutgoingRecord(row["topic"], row["msg_key"].encode(), bytes(row["payload"]),
                               json.loads(row["headers"]) if row["headers"] else {})
                for row in rows
            ])
            sent_ids = [row["id"] for row in rows[:acknowledged]]
            for row in rows[:acknowledged]:
                OUTBOX_RELAYED.labels(row["topic"]).inc()
            if error is not None:  # later rows wait for this one: order is kept
                await connection.execute(_FAILED, rows[acknowledged]["id"], repr(error)[:500])
            if sent_ids:
                await connection.execute(_SENT, sent_ids)
            return len(sent_ids), error is not None
