"""A fresh, migrated database per test module: created as the owner role, used as the app role."""

from __future__ import annotations

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


@asynccontextmanager
async def migrated_database(
    infra: TestInfra, service_dir: Path, prefix: str, *, revision: str = "head"
) -> AsyncIterator[TestDatabase]:
    """Creates `<prefix>_<random>`, runs the service's migrations as the owner up to `revision`, drops it
    afterwards."""
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
    database = TestDatabase(
        name=name, app_url=infra.app_url(name), owner_url=infra.owner_url(name), owner_dsn=infra.raw_owner_dsn(name)
    )
    import asyncio

    await asyncio.to_thread(upgrade, service_dir, database.owner_url, revision)
    try:
        yield database
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
