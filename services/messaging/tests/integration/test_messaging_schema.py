"""Row-level security backs up the tenant filter: every tenant table is forced, and the app role sees and writes
only the tenant of its transaction."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from eva_testing.db import outbox_isolation_problems, rls_problems

pytestmark = pytest.mark.integration


async def test_every_tenant_table_forces_row_level_security(owner_db) -> None:
    rows = await owner_db.fetch(
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname) AS policies
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace""")
    assert {row["relname"] for row in rows} == {
        "messages", "message_statuses", "parked_statuses", "outbox", "media_jobs", "outbound_jobs", "idempotency_keys",
        "media_uploads", "templates", "template_syncs"}
    assert all(row["relrowsecurity"] and row["relforcerowsecurity"] and row["policies"] >= 1 for row in rows)


async def test_the_app_role_sees_and_writes_only_its_transactions_tenant(database) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await asyncpg.connect(database.app_url.replace("postgresql+asyncpg://", "postgresql://"))
    insert = ("INSERT INTO parked_statuses (tenant_id, wamid, status, payload) VALUES ($1, $2, 'READ', '{}')")
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            await connection.execute(insert, tenant_a, "wamid.A")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with connection.transaction():
                    await connection.execute(insert, tenant_b, "wamid.B")
        assert await connection.fetchval("SELECT count(*) FROM parked_statuses") == 0  # no tenant: nothing
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_b)
            assert await connection.fetchval("SELECT count(*) FROM parked_statuses") == 0
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            assert await connection.fetchval("SELECT count(*) FROM parked_statuses") == 1
    finally:
        await connection.close()


async def test_the_catalog_has_no_isolation_problem(database, infra) -> None:
    assert await rls_problems(database.owner_dsn, infra.app_user) == []


async def test_the_outbox_is_per_tenant_and_only_the_relay_reads_across_tenants(database) -> None:
    assert await outbox_isolation_problems(database.app_dsn) == []
