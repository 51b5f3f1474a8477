"""Async PostgreSQL engine and sessions (SQLModel over asyncpg), with the tenant set per transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from prometheus_client import Counter
from pydantic import SecretStr
from sqlalchemy import event, exc, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as BaseAsyncSession
from sqlmodel.ext.asyncio.session import AsyncSession

logger = logging.getLogger(__name__)
LEFT_IN_TRANSACTION = Counter(
    "eva_db_connections_left_in_transaction_total",
    "Pooled connections found still inside a transaction at checkout (a cancelled COMMIT), closed instead of reused")

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")

# A pooled connection idle this long is pinged before it is handed out (PostgreSQL may have restarted meanwhile). A
# connection in steady use is not: a ping is a transaction of its own (three round trips with asyncpg), which cost
# as much as the work on a busy hot path. A connection that breaks while in use invalidates the whole pool
# (SQLAlchemy's disconnect handling), so after a restart one operation fails and the next ones get new connections.
PING_IDLE_SECONDS = 2.0
IDLE_IN_TRANSACTION_TIMEOUT_MS = "60000"
_SET_TENANT_SQL = "SELECT set_config('app.tenant_id', $1, true)"


def _left_in_a_transaction(dbapi_connection: Any) -> bool:
    """Whether a connection coming out of the pool is still inside a transaction. A task cancelled while its COMMIT
    or ROLLBACK waited for the connection (a caller's deadline) leaves SQLAlchemy's adapter believing the transaction
    over while asyncpg's is not; reused, that connection would run every later transaction as a SAVEPOINT of the
    open one: never committed, its locks held until the connection closes. Such a connection is closed instead
    (PostgreSQL rolls its transaction back) and the pool hands out another."""
    driver_connection = getattr(dbapi_connection, "_connection", None)
    if driver_connection is None:
        return False
    return bool(driver_connection.is_in_transaction() or driver_connection._top_xact is not None
                or getattr(dbapi_connection, "_transaction", None) is not None)


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["eva_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _left_in_a_transaction(dbapi_connection):
            LEFT_IN_TRANSACTION.inc()
            logger.warning("a pooled connection was still inside a transaction: closed instead of reused")
            raise exc.DisconnectionError("pooled connection left inside a transaction")
        driver_connection = getattr(dbapi_connection, "_connection", None)
        if driver_connection is not None and driver_connection.is_closed():
            # lost under a statement run directly on asyncpg, which SQLAlchemy's disconnect handling never saw
            raise exc.DisconnectionError("pooled connection closed")
        idle_since = record.info.get("eva_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return  # new, or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError("pooled connection lost while idle") from error


def create_engine(url: str | SecretStr, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    engine = create_async_engine(
        url.get_secret_value() if isinstance(url, SecretStr) else url,
        pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_use_lifo=True, pool_recycle=1800,
        echo=echo,
        # the last resort against a transaction left open by a client (its locks would stop every writer of its
        # rows): PostgreSQL ends a session idle inside a transaction this long. No use case waits that long mid-way.
        connect_args={"server_settings": {"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_TIMEOUT_MS}},
    )
    _ping_when_idle(engine)
    return engine


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: SessionFactory, *, tenant_id: str | None = None) -> AsyncIterator[AsyncSession]:
    """One transaction; when a tenant is given it is set as `app.tenant_id` for row-level security."""
    async with factory() as session, session.begin():
        if tenant_id is not None:
            await set_tenant(session, tenant_id)
        yield session


async def set_tenant(session: BaseAsyncSession | asyncpg.Connection, tenant_id: str) -> None:
    """Sets `app.tenant_id` (row-level security) until the transaction ends or the next call: one transaction can
    write a batch of several tenants' rows, each group after its own `set_tenant`. Takes a session or the connection
    of a `direct_transaction`."""
    connection = session if isinstance(session, asyncpg.Connection) else await driver(session)
    await connection.execute(_SET_TENANT_SQL, tenant_id)


async def per_tenant(
    session: BaseAsyncSession | asyncpg.Connection, items: Iterable[T], tenant_of: Callable[[T], str]
) -> AsyncIterator[tuple[str, list[T]]]:
    """A batch's items grouped by tenant (in the order tenants first appear, items in their order), `app.tenant_id`
    set to each group's tenant before the group is yielded: one transaction writes a batch of several tenants' rows,
    each under its own tenant (row-level security)."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(tenant_of(item), []).append(item)
    for tenant_id, group in groups.items():
        await set_tenant(session, tenant_id)
        yield tenant_id, group


def column_names(model: type[Any]) -> tuple[str, ...]:
    """A table model's columns in table order, for statements written directly (`SELECT` lists, `RETURNING`)."""
    return tuple(column.name for column in model.__table__.columns)


def jsonb_columns(model: type[Any]) -> frozenset[str]:
    """A table model's JSONB columns: a direct statement passes their values as JSON text (`$n::text::jsonb`)."""
    return frozenset(column.name for column in model.__table__.columns if isinstance(column.type, JSONB))


def column_list(model: type[Any]) -> str:
    """`column_names` joined for a statement: `SELECT {column_list(Message)} FROM messages ...`."""
    return ", ".join(column_names(model))


async def driver(session: BaseAsyncSession) -> asyncpg.Connection:
    """The asyncpg connection of the session's transaction, for the few statements every message runs (the tenant,
    the outbox, the inbox), written directly: building, caching and executing an ORM statement costs more CPU than
    PostgreSQL spends on such a statement. The transaction is begun first when nothing ran in it yet, so a direct
    statement is always inside it (rolled back with it)."""
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection  # SQLAlchemy's asyncpg adapter
    if adapted._transaction is None:
        await adapted._start_transaction()
    driver_connection: asyncpg.Connection = adapted._connection
    return driver_connection


def engine_of(sessions: SessionFactory) -> AsyncEngine:
    """The engine a session factory binds its sessions to."""
    engine: AsyncEngine = sessions.kw["bind"]
    return engine


@asynccontextmanager
async def direct_transaction(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a pooled connection, driven by asyncpg alone, for the loops that run all the time (the outbox
    relay, the consumers that only run direct statements): no session, no ORM. The statements are the caller's;
    `app.tenant_id` is not set (`set_tenant`/`per_tenant` take the connection)."""
    async with engine.connect() as connection:
        adapted: Any = (await connection.get_raw_connection()).dbapi_connection
        driver_connection: asyncpg.Connection = adapted._connection
        async with driver_connection.transaction():
            yield driver_connection


async def database_ready(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


_CONFLICTS = {"DeadlockDetectedError", "SerializationError"}  # PostgreSQL's 40P01 and 40001: "run it again"


def is_retryable_conflict(error: BaseException) -> bool:
    """PostgreSQL chose this transaction as a deadlock's victim, or could not serialise it: the remedy is to run it
    again (the error of asyncpg, or SQLAlchemy's wrapping of it)."""
    seen: BaseException | None = error
    for _ in range(3):  # the error, SQLAlchemy's DBAPI adapter's, asyncpg's
        if seen is None:
            return False
        if type(seen).__module__.startswith("asyncpg") and type(seen).__name__ in _CONFLICTS:
            return True
        cause = getattr(seen, "orig", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return False
