"""Row-level security backs up the tenant filter: every tenant table is forced, and the app role sees and writes
only the tenant of its transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from eva_testing.db import outbox_isolation_problems, rls_problems

pytestmark = pytest.mark.integration


SERVICE_DIR = Path(__file__).resolve().parents[2]


def app_dsn(database) -> str:
    return database.app_url.replace("postgresql+asyncpg://", "postgresql://")


async def test_every_tenant_table_forces_row_level_security(owner_db) -> None:
    rows = await owner_db.fetch(
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname) AS policies
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace""")
    assert {row["relname"] for row in rows} == {"contacts", "conversations", "outbox", "tags", "conversation_tags",
                                             "escalations"}
    assert all(row["relrowsecurity"] and row["relforcerowsecurity"] and row["policies"] >= 1 for row in rows)


async def test_the_app_role_sees_and_writes_only_its_transactions_tenant(database) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await asyncpg.connect(app_dsn(database))
    try:
        role = await connection.fetchrow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert not role["rolsuper"] and not role["rolbypassrls"]
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            await connection.execute("INSERT INTO contacts (id, tenant_id, wa_id) VALUES ($1, $2, '111')",
                                     uuid.uuid4(), tenant_a)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with connection.transaction():
                    await connection.execute("INSERT INTO contacts (id, tenant_id, wa_id) VALUES ($1, $2, '222')",
                                             uuid.uuid4(), tenant_b)
        assert await connection.fetchval("SELECT count(*) FROM contacts") == 0  # no tenant set: nothing visible
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_b)
            assert await connection.fetchval("SELECT count(*) FROM contacts") == 0
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            assert await connection.fetchval("SELECT count(*) FROM contacts WHERE tenant_id = $1", tenant_a) == 1
    finally:
        await connection.close()


async def test_the_catalog_has_no_isolation_problem(database, infra) -> None:
    assert await rls_problems(database.owner_dsn, infra.app_user) == []


async def test_the_outbox_is_per_tenant_and_only_the_relay_reads_across_tenants(database) -> None:
    assert await outbox_isolation_problems(database.app_dsn) == []


async def test_the_contact_search_function_answers_only_for_the_transactions_tenant(database) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {tenant_a: uuid.uuid4(), tenant_b: uuid.uuid4()}
    connection = await asyncpg.connect(app_dsn(database))

    async def search(tenant: str | None, name: str = "%anna%", phone: str = "%anna%", limit: int = 10) -> set:
        async with connection.transaction():
            if tenant is not None:
                await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
            rows = await connection.fetch("SELECT contact_ids_matching($1, $2, $3) AS id", name, phone, limit)
        return {row["id"] for row in rows}

    try:
        for tenant, contact_id in ids.items():
            async with connection.transaction():
                await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                await connection.execute(
                    "INSERT INTO contacts (id, tenant_id, wa_id, name, phone) VALUES ($1, $2, '4915112345', "
                    "'Anna Schmidt', '+4915112345')", contact_id, tenant)
        assert await search(tenant_a) == {ids[tenant_a]}
        assert await search(tenant_b) == {ids[tenant_b]}
        assert await search(None) == set()  # no tenant: nothing, never every tenant's contacts
        assert await search(tenant_a, name="%zzz%", phone="%51123%") == {ids[tenant_a]}  # by the phone's digits
        assert await search(tenant_a, limit=0) == set()
        # the function reads through the owner's policy; the app role itself cannot assume it
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            assert await connection.fetchval("SELECT count(*) FROM contacts") == 1
    finally:
        await connection.close()


async def test_a_tagged_conversation_carries_its_last_activity_for_the_tag_list(database) -> None:
    tenant = str(uuid.uuid4())
    contact_id, conversation_id, tag_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(app_dsn(database))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
            await connection.execute("INSERT INTO contacts (id, tenant_id, wa_id) VALUES ($1, $2, '1')",
                                     contact_id, tenant)
            await connection.execute(
                "INSERT INTO conversations (id, tenant_id, contact_id, last_message_at) "
                "VALUES ($1, $2, $3, '2026-11-01T10:00:00Z')", conversation_id, tenant, contact_id)
            await connection.execute("INSERT INTO tags (id, tenant_id, name, color) VALUES ($1, $2, 'vip', '#ff0000')",
                                     tag_id, tenant)
            await connection.execute(
                "INSERT INTO conversation_tags (conversation_id, tag_id, tenant_id) VALUES ($1, $2, $3)",
                conversation_id, tag_id, tenant)
            copied = "SELECT last_message_at FROM conversation_tags WHERE conversation_id = $1"
            assert await connection.fetchval(copied, conversation_id) == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
            await connection.execute(
                "UPDATE conversations SET last_message_at = '2026-11-02T08:30:00Z' WHERE id = $1", conversation_id)
            assert await connection.fetchval(copied, conversation_id) == datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    finally:
        await connection.close()


async def test_the_tag_order_migration_backfills_every_tenants_tagged_conversations(infra) -> None:
    from eva_common.migrations import upgrade
    from eva_testing.db import migrated_database

    tenants = [str(uuid.uuid4()), str(uuid.uuid4())]
    async with migrated_database(infra, SERVICE_DIR, "conversation_0004", revision="0003") as database:
        connection = await asyncpg.connect(app_dsn(database))
        try:
            for index, tenant in enumerate(tenants):
                contact_id, conversation_id, tag_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
                async with connection.transaction():
                    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                    await connection.execute("INSERT INTO contacts (id, tenant_id, wa_id) VALUES ($1, $2, '1')",
                                             contact_id, tenant)
                    await connection.execute(
                        "INSERT INTO conversations (id, tenant_id, contact_id, last_message_at) "
                        "VALUES ($1, $2, $3, $4)",
                        conversation_id, tenant, contact_id, datetime(2026, 11, 1 + index, tzinfo=UTC))
                    await connection.execute(
                        "INSERT INTO tags (id, tenant_id, name, color) VALUES ($1, $2, 'vip', '#ff0000')",
                        tag_id, tenant)
                    await connection.execute(
                        "INSERT INTO conversation_tags (conversation_id, tag_id, tenant_id) VALUES ($1, $2, $3)",
                        conversation_id, tag_id, tenant)
            await asyncio.to_thread(upgrade, SERVICE_DIR, database.owner_url)
            for index, tenant in enumerate(tenants):
                async with connection.transaction():
                    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                    copied = await connection.fetchval("SELECT last_message_at FROM conversation_tags")
                assert copied == datetime(2026, 11, 1 + index, tzinfo=UTC)
        finally:
            await connection.close()
        assert await rls_problems(database.owner_dsn, infra.app_user) == []  # forced again after the backfill
