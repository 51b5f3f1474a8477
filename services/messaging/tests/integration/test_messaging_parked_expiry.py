"""Statuses parked for a message that never comes expire after Meta's retry horizon: the job deletes, across
tenants and as the app role, every status parked longer than the maximum age (batch after batch), keeps the fresh
ones, counts what it deleted and what is still parked, and replicas running it together delete each row once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from eva_common.db import SessionFactory, create_engine, session_factory
from eva_testing.db import TestDatabase, rls_problems
from messaging_service.parked_expiry import ParkedStatusExpiry
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

WEEK = 7 * 24 * 3600


@pytest_asyncio.fixture(scope="module")
async def sessions(database: TestDatabase) -> AsyncIterator[SessionFactory]:
    """Sessions of the app role (no messaging service runs in this module: only the job under test deletes)."""
    engine = create_engine(database.app_url, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


@pytest_asyncio.fixture(autouse=True)
async def nothing_parked(owner_db: asyncpg.Connection) -> None:
    """Each test starts with no parked status (the owner's policies let it delete every tenant's)."""
    await owner_db.execute("DELETE FROM parked_statuses")


@pytest_asyncio.fixture
async def app_db(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database.app_dsn)
    yield connection
    await connection.close()


async def park(app_db: asyncpg.Connection, tenant_id: str, wamid: str, status: str, *, age: timedelta) -> None:
    """Parks a status as the service does (the app role, in its tenant's transaction), `age` ago."""
    async with app_db.transaction():
        await app_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        await app_db.execute(
            "INSERT INTO parked_statuses (tenant_id, wamid, status, payload, created_at) VALUES ($1, $2, $3, '{}', $4)",
            tenant_id, wamid, status, datetime.now(UTC) - age)


async def parked(app_db: asyncpg.Connection, tenant_id: str) -> set[tuple[str, str]]:
    async with app_db.transaction():
        await app_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows = await app_db.fetch("SELECT wamid, status FROM parked_statuses")
    return {(row["wamid"], row["status"]) for row in rows}


def expired_total() -> float:
    return REGISTRY.get_sample_value("eva_messaging_parked_statuses_expired_total") or 0.0


def parked_gauge() -> float | None:
    return REGISTRY.get_sample_value("eva_messaging_parked_statuses")


async def test_old_parked_statuses_of_every_tenant_expire_and_fresh_ones_stay(
        sessions: SessionFactory, app_db: asyncpg.Connection) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    for status in ("SENT", "DELIVERED", "READ"):
        await park(app_db, tenant_a, "wamid.GONE-A", status, age=timedelta(days=8))
    await park(app_db, tenant_a, "wamid.NEW-A", "READ", age=timedelta(days=6, hours=23))
    await park(app_db, tenant_b, "wamid.GONE-B", "DELIVERED", age=timedelta(days=30))
    await park(app_db, tenant_b, "wamid.GONE-B", "READ", age=timedelta(days=7, minutes=1))
    await park(app_db, tenant_b, "wamid.NEW-B", "SENT", age=timedelta(seconds=5))
    before = expired_total()

    # batches of 2: the pass goes on until a batch comes back short
    job = ParkedStatusExpiry(sessions=sessions, max_age_seconds=WEEK, batch_size=2)
    assert await job.run_once() == 5

    assert await parked(app_db, tenant_a) == {("wamid.NEW-A", "READ")}
    assert await parked(app_db, tenant_b) == {("wamid.NEW-B", "SENT")}
    assert expired_total() - before == 5
    assert parked_gauge() == 2
    assert await job.run_once() == 0  # nothing older is left
    assert expired_total() - before == 5

    # a shorter horizon (the setting) expires the fresh ones too
    shorter = ParkedStatusExpiry(sessions=sessions, max_age_seconds=3600)
    assert await shorter.run_once() == 1
    assert await parked(app_db, tenant_a) == set() and await parked(app_db, tenant_b) == {("wamid.NEW-B", "SENT")}
    assert parked_gauge() == 1


async def test_replicas_expiring_together_delete_each_status_once(
        database: TestDatabase, sessions: SessionFactory, app_db: asyncpg.Connection) -> None:
    tenants = [str(uuid.uuid4()) for _ in range(3)]
    for tenant in tenants:
        for index in range(20):
            await park(app_db, tenant, f"wamid.OLD{index}", "DELIVERED", age=timedelta(days=10))
    before = expired_total()
    other_engine = create_engine(database.app_url, pool_size=1)
    try:
        replicas = [ParkedStatusExpiry(sessions=factory, max_age_seconds=WEEK, batch_size=7)
                    for factory in (sessions, session_factory(other_engine))]
        counts = await asyncio.gather(*(replica.run_once() for replica in replicas))
    finally:
        await other_engine.dispose()
    assert sum(counts) == 60
    assert expired_total() - before == 60
    for tenant in tenants:
        assert await parked(app_db, tenant) == set()


async def test_the_app_role_alone_cannot_reach_other_tenants_parked_statuses(
        database: TestDatabase, app_db: asyncpg.Connection, infra) -> None:
    """The job's functions are the only way across tenants: the app role's own DELETE sees no row of another
    tenant, and the catalog still has no isolation problem."""
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    await park(app_db, tenant_a, "wamid.KEEP", "READ", age=timedelta(days=10))
    async with app_db.transaction():
        await app_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_b)
        assert await app_db.execute("DELETE FROM parked_statuses") == "DELETE 0"
    assert await app_db.execute("DELETE FROM parked_statuses") == "DELETE 0"  # no tenant: nothing
    assert await parked(app_db, tenant_a) == {("wamid.KEEP", "READ")}
    assert await rls_problems(database.owner_dsn, infra.app_user) == []
