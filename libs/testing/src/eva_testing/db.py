"""A fresh, migrated database per test module: created as the owner role, used as the app role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from eva_common.migrations import upgrade

from eva_testing.infra import TestInfra

_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {app}",
)


@dataclass(frozen=True, slots=True)
class TestDatabase:
    __test__ = False

    name: str
    app_url: str
    owner_url: str
    owner_dsn: str

    @property
    def app_dsn(self) -> str:
        """The app role's DSN for asyncpg (app_url without the SQLAlchemy driver)."""
        return self.app_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def empty_database(infra: TestInfra, prefix: str) -> AsyncIterator[TestDatabase]:
    """Creates `<prefix>_<random>` as the owner, open to the app role (connect, and the owner's future tables,
    sequences and functions), and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.raw_owner_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(infra.raw_owner_dsn(name))
    try:
        await conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {infra.app_user}')
        for statement in _GRANTS:
            await conn.execute(statement.format(app=infra.app_user, owner=infra.owner_user))
    finally:
        await conn.close()
    try:
        yield TestDatabase(name=name, app_url=infra.app_url(name), owner_url=infra.owner_url(name),
                           owner_dsn=infra.raw_owner_dsn(name))
    finally:
        admin = await asyncpg.connect(infra.raw_owner_dsn("postgres"))
        try:
            # The app role's backends that just disconnected may still be exiting, and the owner may not terminate
            # them (no pg_signal_backend), so FORCE can fail for a moment on a loaded machine: retry for up to 10 s.
            for attempt in range(50):
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except asyncpg.exceptions.InsufficientPrivilegeError:
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_database(
    infra: TestInfra, service_dir: Path, prefix: str, *, revision: str = "head"
) -> AsyncIterator[TestDatabase]:
    """`empty_database`, with the service's migrations run as the owner up to `revision`."""
    async with empty_database(infra, prefix) as database:
        await asyncio.to_thread(upgrade, service_dir, database.owner_url, revision)
        yield database


async def rls_problems(owner_dsn: str, app_user: str) -> list[str]:
    """What breaks the isolation rules in a migrated database: every table with a tenant_id column must have row
    level security enabled and forced, with at least one policy; the app role must be neither superuser, nor
    BYPASSRLS, nor the owner of any table."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner,
                   (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname)
                   AS policies
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND EXISTS (SELECT 1 FROM information_schema.columns col WHERE col.table_schema = 'public'
                          AND col.table_name = c.relname AND col.column_name = 'tenant_id')
            """
        )
        role = await conn.fetchrow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", app_user)
    finally:
        await conn.close()
    problems = [
        f"{row['relname']}: {what}"
        for row in rows
        for what, bad in (
            ("RLS not enabled", not row["relrowsecurity"]),
            ("RLS not forced", not row["relforcerowsecurity"]),
            ("no policy", row["policies"] == 0),
            ("owned by the app role", row["owner"] == app_user),
        )
        if bad
    ]
    if role is None or role["rolsuper"] or role["rolbypassrls"]:
        problems.append(f"role {app_user} is missing, superuser or BYPASSRLS")
    if not rows:
        problems.append("no table has a tenant_id column")
    return problems


# written as already sent, so the relay of a database that is being served never tries to publish them
_OUTBOX_INSERT = ("INSERT INTO outbox (event_id, tenant_id, topic, msg_key, payload, headers, created_at, sent_at) "
                  "VALUES ($1, $2, 't', 'k', '\\x00', '{}', now(), now())")


async def outbox_isolation_problems(app_dsn: str) -> list[str]:
    """What breaks the outbox's isolation, tried as the app role: each tenant writes and reads only its own rows,
    nothing is written or read without a tenant, and only the relay (app.role = outbox-relay) reads across
    tenants. Leaves two rows in the outbox, marked sent (a relay serving the database skips them)."""
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    problems: list[str] = []
    conn = await asyncpg.connect(app_dsn)

    async def visible(*, tenant: str | None = None, role: str | None = None) -> set[str]:
        async with conn.transaction():
            if tenant is not None:
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
            if role is not None:
                await conn.execute("SELECT set_config('app.role', $1, true)", role)
            rows = await conn.fetch("SELECT tenant_id FROM outbox WHERE tenant_id = ANY($1::text[])",
                                    [tenant_a, tenant_b])
        return {row["tenant_id"] for row in rows}

    async def refused(tenant: str | None, row_tenant: str) -> bool:
        try:
            async with conn.transaction():
                if tenant is not None:
                    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                await conn.execute(_OUTBOX_INSERT, f"evt-{uuid.uuid4()}", row_tenant)
        except asyncpg.InsufficientPrivilegeError:  # SQLSTATE 42501
            return True
        return False

    try:
        for tenant in (tenant_a, tenant_b):
            if await refused(tenant, tenant):
                problems.append("a tenant cannot write its own outbox row")
        if not await refused(tenant_a, tenant_b):
            problems.append("a tenant wrote another tenant's outbox row")
        if not await refused(None, tenant_a):
            problems.append("an outbox row was written with no tenant set")
        expected: dict[str, tuple[dict[str, str], set[str]]] = {
            "no tenant": ({}, set()),
            "another role": ({"role": "some-worker"}, set()),
            "tenant A": ({"tenant": tenant_a}, {tenant_a}),
            "tenant B": ({"tenant": tenant_b}, {tenant_b}),
            "the relay": ({"role": "outbox-relay"}, {tenant_a, tenant_b}),
        }
        for who, (scope, rows) in expected.items():
            seen = await visible(**scope)
            if seen != rows:
                problems.append(f"{who} sees {len(seen)} of the two tenants' rows, not {len(rows)}")
    finally:
        await conn.close()
    return problems
