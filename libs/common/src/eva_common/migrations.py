"""Alembic glue shared by every service's migrations/env.py, and a programmatic `upgrade head`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's migrations/env.py (online mode, asyncpg).

    The URL comes from the Alembic config, else EVA_MIGRATION_DATABASE_URL (the owner role), so
    `alembic -c alembic.ini upgrade head` works in a container. An advisory lock makes replicas that start
    together migrate one after the other.
    """
    config = context.config
    if not config.get_main_option("sqlalchemy.url"):
        url = os.environ.get("EVA_MIGRATION_DATABASE_URL")
        if not url:
            raise RuntimeError("set EVA_MIGRATION_DATABASE_URL (the owner role's URL) to run migrations")
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))

    def do_run(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_lock(7411002)"))
        # The lock is the session's. End the transaction its SELECT began, or Alembic would join it (and nothing
        # would ever commit the migrations): begin_transaction() below then commits them, or rolls them back.
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(7411002)"))
            connection.commit()

    async def run_async() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())


def upgrade(service_dir: Path, database_url: str, revision: str = "head") -> None:
    """Runs a service's migrations to `revision` (as the owner role)."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, revision)


TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
OUTBOX_RELAY_PREDICATE = "current_setting('app.role', true) = 'outbox-relay'"


def tenant_rls(table: str) -> list[str]:
    """Row-level security for a tenant-owned table: forced (the owner too), fail-closed when no tenant is set."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})",
    ]


def outbox_rls(table: str = "outbox") -> list[str]:
    """The outbox is written per tenant and read across tenants only by the relay, which names itself."""
    return [
        *tenant_rls(table),
        f"CREATE POLICY outbox_relay ON {table} USING ({OUTBOX_RELAY_PREDICATE}) WITH CHECK ({OUTBOX_RELAY_PREDICATE})",
    ]


def drop_outbox_rls(table: str = "outbox") -> list[str]:
    """Undoes `outbox_rls(table)` (for a revision's downgrade)."""
    return [
        f"DROP POLICY outbox_relay ON {table}",
        f"DROP POLICY tenant_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def create_outbox_table() -> None:
    """In a revision: the `outbox` table `eva_common.outbox` writes and relays, with its index of unsent events.
    Row-level security is a separate step (`outbox_rls`)."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("msg_key", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index("outbox_unsent", "outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"))


def create_inbox_table() -> None:
    """In a revision: the `inbox` table of `eva_common.inbox.claim_event` (one row per consumer and event applied)."""
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def housekeeping_indexes(*, inbox: bool) -> list[str]:
    """In a revision: BRIN indexes on the time columns `eva_common.housekeeping.prune` filters on (the outbox's, and
    the inbox's when the database has one): a few pages each, nearly free to maintain on append-only tables."""
    statements = ["CREATE INDEX IF NOT EXISTS outbox_created_brin ON outbox USING brin (created_at)"]
    if inbox:
        statements.append("CREATE INDEX IF NOT EXISTS inbox_processed_brin ON inbox USING brin (processed_at)")
    return statements


def drop_housekeeping_indexes() -> list[str]:
    """Undoes `housekeeping_indexes` (for a revision's downgrade)."""
    return ["DROP INDEX IF EXISTS inbox_processed_brin", "DROP INDEX IF EXISTS outbox_created_brin"]
