"""The engine of eva_common.db against the real PostgreSQL: a pooled connection that sat idle longer than
PING_IDLE_SECONDS is pinged when it is checked out and replaced when its backend is gone; one in steady use is not
pinged; the pool hands out the connection returned last; set_tenant sets app.tenant_id for the transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from eva_common import db
from eva_common.db import create_engine, direct_transaction, session_factory, set_tenant
from eva_testing.db import TestDatabase, empty_database
from eva_testing.infra import test_infra
from eva_testing.waiting import eventually
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

pytestmark = pytest.mark.integration

PING = ";"  # what SQLAlchemy's asyncpg dialect sends to ping a connection


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[TestDatabase]:
    async with empty_database(test_infra(), "pool") as database:
        yield database


class Statements:
    """Every statement the engine's connections send (asyncpg's query logger, added to each new connection)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sent: list[str] = []

        @event.listens_for(engine.sync_engine, "connect")
        def log_queries(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.driver_connection.add_query_logger(lambda query: self.sent.append(query.query))

    def pings(self) -> int:
        return self.sent.count(PING)


class PingSpy:
    """Records each ping the engine's dialect makes and whether it succeeded."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.outcomes: list[bool] = []
        dialect = engine.sync_engine.dialect
        ping = dialect.do_ping

        def do_ping(dbapi_connection: Any) -> bool:
            try:
                result = ping(dbapi_connection)
            except Exception:
                self.outcomes.append(False)
                raise
            self.outcomes.append(True)
            return result

        dialect.do_ping = do_ping  # type: ignore[method-assign]


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def terminate(database: TestDatabase, pid: int) -> None:
    """Ends the backend from another connection (the owner may end its own role's backends) and waits until it
    is gone."""
    other = await asyncpg.connect(database.owner_dsn)
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)

        async def gone() -> bool:
            return not await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

        await eventually(gone, timeout=10)
    finally:
        await other.close()


async def test_an_idle_connection_whose_backend_died_is_replaced_at_checkout_without_an_error(
    database: TestDatabase,
) -> None:
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        pings = PingSpy(engine)
        first = await backend_pid(engine)  # the connection goes back to the pool
        await terminate(database, first)  # PostgreSQL restarted, say, while it sat there

        second = await backend_pid(engine)  # no error, however soon: asyncpg saw the socket close
        assert second != first
        assert pings.outcomes == []  # found closed at checkout, without a ping
        assert await backend_pid(engine) == second  # the replacement stays in the pool
    finally:
        await engine.dispose()


async def test_a_dead_connection_asyncpg_has_not_noticed_is_found_by_the_idle_ping(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend lost without its socket closing (a network partition, a host gone) looks open to asyncpg: the
    ping after an idle spell finds it, and the pool connects anew without an error."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(asyncpg.Connection, "is_closed", lambda _self: False)
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        pings = PingSpy(engine)
        first = await backend_pid(engine)
        await terminate(database, first)
        await asyncio.sleep(0.3)  # idle longer than PING_IDLE_SECONDS

        second = await backend_pid(engine)
        assert second != first
        assert pings.outcomes == [False]  # found out by the idle ping, which failed
    finally:
        await engine.dispose()


async def _at_least(count: Any, expected: int) -> bool:
    await asyncio.sleep(0)  # asyncpg reports queries with call_soon
    return bool(count() >= expected)


async def test_a_connection_that_breaks_while_in_use_fails_that_use_once_then_the_pool_reconnects(
    database: TestDatabase,
) -> None:
    """What no check at checkout can spare: the backend ends in the middle of a transaction."""
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        with pytest.raises(sa.exc.DBAPIError) as failure:
            async with engine.connect() as connection:
                first = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await terminate(database, first)
                await connection.execute(sa.text("SELECT 1"))
        assert failure.value.connection_invalidated
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_direct_transaction_commits_and_a_failed_one_rolls_back(database: TestDatabase) -> None:
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        async with direct_transaction(engine) as connection:
            await connection.execute("CREATE TABLE direct_probe (n integer)")
            await connection.execute("INSERT INTO direct_probe VALUES (1)")
        with pytest.raises(RuntimeError):
            async with direct_transaction(engine) as connection:
                await connection.execute("INSERT INTO direct_probe VALUES (2)")
                raise RuntimeError("the caller failed half-way")
        async with direct_transaction(engine) as connection:
            assert await connection.fetchval("SELECT array_agg(n) FROM direct_probe") == [1]
            assert connection.is_in_transaction()
        async with engine.connect() as pooled:  # the same connection, back in the pool outside any transaction
            assert (await pooled.execute(sa.text("SELECT count(*) FROM direct_probe"))).scalar_one() == 1
            await pooled.execute(sa.text("DROP TABLE direct_probe"))
            await pooled.commit()
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged_and_one_idle_past_the_threshold_is(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        statements = Statements(engine)
        pids = {await backend_pid(engine) for _ in range(30)}  # back to back: each checkout well within 2 s
        await asyncio.sleep(0)  # let asyncpg report the queries (call_soon)
        assert len(pids) == 1
        assert statements.sent.count("BEGIN;") == 30  # the logger sees each use's transaction...
        assert statements.pings() == 0  # ...and no ping (BEGIN; ";"; ROLLBACK) among them

        monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # now every checkout counts as after a long idle
        assert await backend_pid(engine) in pids
        await eventually(lambda: _at_least(statements.pings, 1), timeout=5)
    finally:
        await engine.dispose()


async def test_the_pool_hands_out_the_connection_returned_last(database: TestDatabase) -> None:
    """LIFO: under a light load the same few connections stay warm (and the rest grow idle and get pinged)."""
    engine = create_engine(database.owner_url, pool_size=2)
    try:
        async with engine.connect() as one, engine.connect() as two:
            first = (await one.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            second = (await two.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            await one.close()  # returned first
        # `two` returned last
        assert first != second
        assert await backend_pid(engine) == second
        assert await backend_pid(engine) == second
    finally:
        await engine.dispose()


async def test_set_tenant_sets_the_tenant_until_the_next_call_or_the_end_of_the_transaction(
    database: TestDatabase,
) -> None:
    engine = create_engine(database.owner_url, pool_size=1)
    factory = session_factory(engine)

    async def tenant(session: AsyncSession) -> str | None:
        connection = await session.connection()
        value: str | None = (await connection.execute(sa.text("SELECT current_setting('app.tenant_id', true)"))
                             ).scalar_one()
        return value

    try:
        async with factory() as session, session.begin():
            await set_tenant(session, "tenant-a")
            assert await tenant(session) == "tenant-a"
            await set_tenant(session, "tenant-b")
            assert await tenant(session) == "tenant-b"
        async with factory() as session, session.begin():  # the same pooled connection, a new transaction
            assert await tenant(session) in (None, "")
    finally:
        await engine.dispose()


async def test_a_direct_statement_runs_inside_the_sessions_transaction(database: TestDatabase) -> None:
    """`driver(session)` begins the session's transaction when nothing ran in it yet: a statement written directly
    as the first of a transaction is rolled back with it, and committed with it."""
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE direct_writes (n int)")
        factory = session_factory(engine)
        with pytest.raises(RuntimeError):
            async with factory() as session, session.begin():
                await (await db.driver(session)).execute("INSERT INTO direct_writes VALUES (1)")
                raise RuntimeError("the use case failed after its first write")
        async with factory() as session, session.begin():
            await (await db.driver(session)).execute("INSERT INTO direct_writes VALUES (2)")
            await session.exec(sa.text("INSERT INTO direct_writes VALUES (3)"))  # type: ignore[call-overload]
        async with engine.connect() as connection:
            rows = (await connection.exec_driver_sql("SELECT n FROM direct_writes ORDER BY n")).all()
        assert [row[0] for row in rows] == [2, 3]
    finally:
        await engine.dispose()


async def test_a_connection_whose_transaction_outlived_its_session_is_closed_instead_of_reused(
    database: TestDatabase,
) -> None:
    """A task cancelled while its COMMIT waited for the connection leaves SQLAlchemy's adapter believing the
    transaction over while asyncpg's is still open. Reused, the connection would run the next session's transaction as
    a SAVEPOINT of the open one: 'committed' but never visible, its locks held. The pool closes it instead."""
    engine = create_engine(database.owner_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE left_open (n int)")
        factory = session_factory(engine)
        async with factory() as session:
            await session.exec(sa.text("INSERT INTO left_open VALUES (1)"))  # type: ignore[call-overload]
            adapted = (await (await session.connection()).get_raw_connection()).dbapi_connection
            adapted._transaction = None  # what a COMMIT cancelled while it waited for the connection leaves
            await session.commit()  # the adapter has nothing to commit: the server's transaction stays open
        first = adapted
        async with factory() as session, session.begin():
            await session.exec(sa.text("INSERT INTO left_open VALUES (2)"))  # type: ignore[call-overload]
            reused = (await (await session.connection()).get_raw_connection()).dbapi_connection
            # and PostgreSQL itself ends a session left idle inside a transaction for a minute
            timeout = await session.exec(sa.text("SHOW idle_in_transaction_session_timeout"))  # type: ignore[call-overload]
            assert timeout.scalar_one() == "1min"
        assert reused is not first  # the connection left in its transaction was closed, not handed out
        other = await asyncpg.connect(database.owner_dsn)
        try:
            assert [row["n"] for row in await other.fetch("SELECT n FROM left_open ORDER BY n")] == [2]
            assert await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'") == 0
        finally:
            await other.close()
    finally:
        await engine.dispose()
