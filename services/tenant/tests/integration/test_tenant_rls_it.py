"""Row-level security, proven on the migrated database: the catalog has no isolation problem, the lookups are
SECURITY DEFINER functions the app role (only) may call, and with two tenants' rows present in every tenant-owned
table the app role sees nothing with no tenant set, only A's rows with A set, and is refused (SQLSTATE 42501)
writing B's row under A."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from eva_testing.db import outbox_isolation_problems, rls_problems
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration

LOOKUPS = ("tenant_by_slug", "tenant_slugs_like", "tenants_page", "phone_number_owner", "verify_token_owners",
           "api_key_by_digest")


def app_dsn(harness) -> str:
    return harness.db.app_url.replace("postgresql+asyncpg://", "postgresql://")


def _row(table: str, tenant: str) -> tuple[str, list[Any]]:
    """An INSERT of one row of `table` owned by `tenant` (ids are unique per call)."""
    unique = uuid.uuid4().hex
    rows: dict[str, Callable[[], tuple[str, list[Any]]]] = {
        "tenants": lambda: ("INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $3)",
                            [tenant, "Hotel", f"rls-{unique}"]),
        "whatsapp_credentials": lambda: (
            "INSERT INTO whatsapp_credentials (tenant_id, phone_number_id, waba_id, access_token_ciphertext, "
            "app_secret_ciphertext, verify_token_ciphertext, verify_token_digest, access_token_last4, "
            "app_secret_last4, verify_token_last4, key_id) VALUES ($1, $2, '1', 'x', 'x', 'x', $3, 'x', 'x', 'x', 'k')",
            [tenant, str(uuid.uuid4().int)[:15], unique]),
        "api_keys": lambda: (
            "INSERT INTO api_keys (id, tenant_id, name, prefix, digest, scopes, created_by) "
            "VALUES ($1, $2, 'k', 'abcdefgh', $3, ARRAY['usage:read'], 'u')", [unique, tenant, unique]),
        "usage_daily": lambda: (
            "INSERT INTO usage_daily (tenant_id, day, category, direction, count) "
            "VALUES ($1, DATE '2020-01-01' + (random() * 3000)::int, 'service', 'inbound', 1)", [tenant]),
        "usage_delivered": lambda: (
            "INSERT INTO usage_delivered (tenant_id, message_id, category, day) "
            "VALUES ($1, $2, 'marketing', DATE '2026-12-06')", [tenant, unique]),
        "audit_logs": lambda: (
            "INSERT INTO audit_logs (id, tenant_id, actor_type, action, outcome, occurred_at) "
            "VALUES ($1, $2, 'user', 'x.done', 'success', now())", [unique, tenant]),
        "outbox": lambda: (
            "INSERT INTO outbox (event_id, tenant_id, topic, msg_key, payload, headers, created_at, sent_at) "
            "VALUES ($1, $2, 't', 'k', 'x', '{}', now(), now())", [unique, tenant]),
    }
    return rows[table]()


TABLES = ("tenants", "whatsapp_credentials", "api_keys", "usage_daily", "usage_delivered", "audit_logs", "outbox")
KEY = {"tenants": "id"}


async def visible(connection: asyncpg.Connection, table: str, tenants: list[str], as_tenant: str | None) -> set[str]:
    column = KEY.get(table, "tenant_id")
    async with connection.transaction():
        if as_tenant is not None:
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", as_tenant)
        rows = await connection.fetch(f"SELECT DISTINCT {column} AS owner FROM {table} WHERE {column} = ANY($1)",
                                      tenants)
    return {row["owner"] for row in rows}


async def test_the_catalog_has_no_isolation_problem(harness) -> None:
    infra = test_infra()
    assert await rls_problems(harness.db.owner_dsn, infra.app_user) == []
    assert await outbox_isolation_problems(harness.db.app_dsn) == []
    rows = await harness.sql(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = 'tenants'")
    assert [(row["relrowsecurity"], row["relforcerowsecurity"]) for row in rows] == [(True, True)]


async def test_lookups_are_security_definer_functions_only_the_app_role_may_call(harness) -> None:
    infra = test_infra()
    rows = await harness.sql(
        "SELECT proname, prosecdef, proconfig, pg_get_userbyid(proowner) AS owner, "
        "has_function_privilege($1, p.oid, 'EXECUTE') AS app_may_call, "
        "has_function_privilege('public', p.oid, 'EXECUTE') AS anyone_may_call "
        "FROM pg_proc p WHERE proname = ANY($2::text[])", infra.app_user, list(LOOKUPS))
    assert {row["proname"] for row in rows} == set(LOOKUPS)
    for row in rows:
        assert row["prosecdef"] and row["proconfig"] == ["search_path=public"], row["proname"]
        assert row["owner"] == infra.owner_user
        assert row["app_may_call"] and not row["anyone_may_call"], row["proname"]
    member = await harness.sql("SELECT pg_has_role($1, $2, 'MEMBER') AS member", infra.app_user, infra.owner_user)
    assert member[0]["member"] is False  # the lookups' owner-only policy can never apply to the app role


@pytest.mark.parametrize("table", TABLES)
async def test_the_app_role_sees_and_writes_only_its_transactions_tenant(harness, table: str) -> None:
    tenant_a, tenant_b = f"rls-a-{uuid.uuid4()}", f"rls-b-{uuid.uuid4()}"
    for tenant in (tenant_a, tenant_b):  # as the owner, each row under its own tenant (parent tenant row first)
        if table in ("whatsapp_credentials", "api_keys"):
            query, args = _row("tenants", tenant)
            await harness.sql(query, *args, tenant=tenant)
        query, args = _row(table, tenant)
        await harness.sql(query, *args, tenant=tenant)
    app = await asyncpg.connect(app_dsn(harness))
    try:
        both = [tenant_a, tenant_b]
        assert await visible(app, table, both, None) == set()  # no tenant: nothing
        assert await visible(app, table, both, tenant_a) == {tenant_a}
        assert await visible(app, table, both, tenant_b) == {tenant_b}
        async with app.transaction():
            await app.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            query, args = _row(table, tenant_b)
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:  # B's row under A
                async with app.transaction():
                    await app.execute(query, *args)
            assert refused.value.sqlstate == "42501"
            if table not in ("tenants", "whatsapp_credentials"):  # (one row per tenant there, A's exists)
                own_query, own_args = _row(table, tenant_a)
                await app.execute(own_query, *own_args)  # while a row of A is accepted
    finally:
        await app.close()


async def test_the_app_role_cannot_run_a_lookup_to_read_rows(harness) -> None:
    """The definer functions answer one question each; the tables themselves stay closed without a tenant."""
    tenant = await harness.new_tenant("Lookup Closed Hotel")
    app = await asyncpg.connect(app_dsn(harness))
    try:
        assert await app.fetch("SELECT id FROM tenants WHERE id = $1", tenant.id) == []
        found = await app.fetch("SELECT id, slug, read_receipts FROM tenant_by_slug($1)", tenant.slug)
        assert [(row["id"], row["slug"], row["read_receipts"]) for row in found] == [(tenant.id, tenant.slug,
                                                                                       "on_read")]
    finally:
        await app.close()
