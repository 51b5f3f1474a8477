"""Housekeeping on conversation's real schema (outbox and inbox, row-level security, the BRIN indexes of its
migrations): as the app role, a pass deletes published outbox rows and inbox claims past their retention, in
batches, and keeps unpublished rows however old, recent rows, and everything when nothing is due; the relay's leader
runs it on its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from eva_common.db import create_engine
from eva_common.housekeeping import RELAY_ROLE, Retention, prune
from eva_common.metrics import HOUSEKEEPING_DELETED
from eva_common.outbox import OutboxRelay
from eva_testing.db import TestDatabase
from eva_testing.kafka import RecordingPublisher
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RETENTION = Retention(outbox=timedelta(days=3), inbox=timedelta(days=14), batch=2)


@pytest_asyncio.fixture
async def app(database: TestDatabase) -> AsyncIterator[tuple[asyncpg.Connection, AsyncEngine]]:
    connection = await asyncpg.connect(database.app_dsn)
    engine = create_engine(database.app_url, pool_size=2)
    async with connection.transaction():
        await connection.execute(RELAY_ROLE)
        await connection.execute("DELETE FROM outbox")
    await connection.execute("DELETE FROM inbox")
    try:
        yield connection, engine
    finally:
        await connection.close()
        await engine.dispose()


async def add_outbox(connection: asyncpg.Connection, *, age: timedelta, sent: bool, now: datetime = NOW) -> str:
    event_id = str(uuid.uuid4())
    async with connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", "t-1")
        await connection.execute(
            "INSERT INTO outbox (event_id, tenant_id, topic, msg_key, payload, headers, created_at, sent_at) "
            "VALUES ($1, 't-1', 'conversation.events.v1', 'k', '\\x7b7d'::bytea, '{}'::json, $2, $3)",
            event_id, now - age, (now - age + timedelta(seconds=1)) if sent else None)
    return event_id


async def add_claim(connection: asyncpg.Connection, *, age: timedelta, now: datetime = NOW) -> str:
    event_id = str(uuid.uuid4())
    await connection.execute("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('c', $1, $2)",
                             event_id, now - age)
    return event_id


async def outbox_ids(connection: asyncpg.Connection) -> set[str]:
    async with connection.transaction():
        await connection.execute(RELAY_ROLE)
        return {row[0] for row in await connection.fetch("SELECT event_id FROM outbox")}


async def inbox_ids(connection: asyncpg.Connection) -> set[str]:
    return {row[0] for row in await connection.fetch("SELECT event_id FROM inbox")}


async def test_a_pass_deletes_only_published_outbox_rows_and_claims_past_their_retention(app) -> None:
    connection, engine = app
    old_sent = [await add_outbox(connection, age=timedelta(days=4), sent=True) for _ in range(5)]
    old_unsent = await add_outbox(connection, age=timedelta(days=30), sent=False)
    recent_sent = await add_outbox(connection, age=timedelta(days=2), sent=True)
    old_claims = [await add_claim(connection, age=timedelta(days=15)) for _ in range(3)]
    recent_claim = await add_claim(connection, age=timedelta(days=13))
    before = HOUSEKEEPING_DELETED.labels("outbox")._value.get()

    pruned = await prune(engine, RETENTION, now=NOW)  # batches of 2: 5 rows take three statements

    assert (pruned.outbox, pruned.inbox) == (5, 3)
    assert await outbox_ids(connection) == {old_unsent, recent_sent}
    assert await inbox_ids(connection) == {recent_claim}
    assert HOUSEKEEPING_DELETED.labels("outbox")._value.get() - before == 5
    assert not set(old_sent) & await outbox_ids(connection) and not set(old_claims) & await inbox_ids(connection)
    again = await prune(engine, RETENTION, now=NOW)
    assert (again.outbox, again.inbox) == (0, 0)


async def test_the_pass_uses_the_brin_indexes_of_the_migrations(database: TestDatabase) -> None:
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        indexes = {row["indexname"]: row["indexdef"] for row in await owner.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('outbox', 'inbox')")}
    finally:
        await owner.close()
    assert "USING brin (created_at)" in indexes["outbox_created_brin"]
    assert "USING brin (processed_at)" in indexes["inbox_processed_brin"]


async def test_the_relays_leader_runs_housekeeping_on_its_own(app) -> None:
    connection, engine = app
    now = datetime.now(UTC)
    old = await add_outbox(connection, age=timedelta(days=5), sent=True, now=now)
    fresh = await add_outbox(connection, age=timedelta(minutes=1), sent=True, now=now)
    old_claim = await add_claim(connection, age=timedelta(days=20), now=now)
    relay = OutboxRelay(engine=engine, publisher=RecordingPublisher(), poll_seconds=0.05, prune_every_seconds=0.2)
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(100):
            if old not in await outbox_ids(connection) and old_claim not in await inbox_ids(connection):
                break
            await asyncio.sleep(0.1)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)
    assert await outbox_ids(connection) == {fresh}
    assert await inbox_ids(connection) == set()
