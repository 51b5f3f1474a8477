"""Row-level security on auth's tables, proven against the migrated database: the catalog, the app role's view
with no tenant / tenant A / tenant B, the refusal (42501) to write another tenant's row, and the named SECURITY
DEFINER lookups used before the tenant is known."""

import uuid

import asyncpg
import pytest
from eva_testing.db import outbox_isolation_problems, rls_problems
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration

INSERT_USER = ("INSERT INTO users (id, tenant_id, name, email, password_hash, role) "
               "VALUES ($1, $2, 'X', $3, 'h', 'admin')")
LOOKUPS = ("auth_login_candidates", "auth_refresh_token_by_hash", "auth_user_tenant")


async def test_every_tenant_table_has_forced_rls_and_a_policy(stack) -> None:
    assert await rls_problems(stack.auth_db.owner_dsn, test_infra().app_user) == []
    rows = await stack.sql(stack.auth_db, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relforcerowsecurity "
                                          "AND relnamespace = 'public'::regnamespace ORDER BY relname")
    assert [row["relname"] for row in rows] == ["outbox", "refresh_tokens", "users"]
    assert await outbox_isolation_problems(stack.auth_db.app_dsn) == []


async def test_app_role_sees_only_the_tenant_it_set(stack) -> None:
    a, b = await stack.register(tenant_name="Isolation A"), await stack.register(tenant_name="Isolation B")
    assert await stack.app_sql("SELECT count(*) AS n FROM users") == [{"n": 0}]
    assert await stack.app_sql("SELECT count(*) AS n FROM refresh_tokens") == [{"n": 0}]
    assert await stack.app_sql("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    seen = await stack.app_sql("SELECT DISTINCT tenant_id FROM users", tenant=a.tenant.id)
    assert [row["tenant_id"] for row in seen] == [a.tenant.id]
    tokens = await stack.app_sql("SELECT DISTINCT tenant_id FROM refresh_tokens", tenant=a.tenant.id)
    assert [row["tenant_id"] for row in tokens] == [a.tenant.id]
    assert await stack.app_sql("SELECT count(*) AS n FROM users WHERE id = $1", b.user.id, tenant=a.tenant.id) == [
        {"n": 0}]
    # an update aimed at B's user with A set touches nothing
    assert await stack.app_sql("UPDATE users SET name = 'pwned' WHERE id = $1 RETURNING id", b.user.id,
                               tenant=a.tenant.id) == []


async def test_app_role_cannot_write_another_tenants_row(stack) -> None:
    a, b = await stack.register(tenant_name="Writer A"), await stack.register(tenant_name="Writer B")
    with pytest.raises(asyncpg.PostgresError) as raised:
        await stack.app_sql(
            INSERT_USER,
            str(uuid.uuid4()), b.tenant.id, stack.email(), tenant=a.tenant.id)
    assert raised.value.sqlstate == "42501"
    with pytest.raises(asyncpg.PostgresError) as raised:
        await stack.app_sql("UPDATE users SET tenant_id = $2 WHERE id = $1", a.user.id, b.tenant.id,
                            tenant=a.tenant.id)
    assert raised.value.sqlstate == "42501"
    with pytest.raises(asyncpg.PostgresError) as raised:  # with no tenant at all, nothing can be written
        await stack.app_sql(
            INSERT_USER,
            str(uuid.uuid4()), a.tenant.id, stack.email())
    assert raised.value.sqlstate == "42501"


async def test_definer_lookups_return_only_what_they_need(stack) -> None:
    email = stack.email()
    a = await stack.register(email=email, tenant_name="Lookup A")
    b = await stack.register(email=email, tenant_name="Lookup B")
    rows = await stack.app_sql("SELECT * FROM auth_login_candidates($1)", email.upper())
    assert {row["tenant_id"] for row in rows} == {a.tenant.id, b.tenant.id}
    assert set(rows[0].keys()) == {"id", "tenant_id", "password_hash", "role", "active", "deleted"}
    assert await stack.app_sql("SELECT auth_user_tenant($1) AS t", b.user.id) == [{"t": b.tenant.id}]
    assert await stack.app_sql("SELECT auth_user_tenant($1) AS t", "nobody") == [{"t": None}]
    digest = (await stack.sql(stack.auth_db, "SELECT token_hash FROM refresh_tokens WHERE user_id = $1",
                              a.user.id, tenant=a.tenant.id))[0]["token_hash"]
    (token,) = await stack.app_sql("SELECT * FROM auth_refresh_token_by_hash($1)", digest)
    assert token["user_id"] == a.user.id and token["tenant_id"] == a.tenant.id and "token_hash" not in token.keys()
    # the lookups do not open the tables: the app role still sees nothing without a tenant
    assert await stack.app_sql("SELECT count(*) AS n FROM users WHERE email = $1", email) == [{"n": 0}]


async def test_lookups_are_security_definer_owned_by_the_owner_with_a_fixed_search_path(stack) -> None:
    rows = await stack.sql(
        stack.auth_db,
        "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, p.proconfig, "
        "has_function_privilege($1, p.oid, 'EXECUTE') AS app_can, "
        "has_function_privilege('public', p.oid, 'EXECUTE') AS public_can "
        "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY p.proname",
        test_infra().app_user)
    assert [row["proname"] for row in rows] == sorted(LOOKUPS)
    for row in rows:
        assert row["prosecdef"] and row["owner"] == test_infra().owner_user, row["proname"]
        assert row["proconfig"] == ["search_path=public"], row["proname"]
        assert row["app_can"] and not row["public_can"], row["proname"]


async def test_the_owner_lookup_policy_does_not_reach_the_app_role(stack) -> None:
    rows = await stack.sql(stack.auth_db, "SELECT tablename, policyname, roles, cmd FROM pg_policies "
                                          "WHERE policyname = 'definer_lookup' ORDER BY tablename")
    assert [(row["tablename"], row["roles"], row["cmd"]) for row in rows] == [
        ("refresh_tokens", [test_infra().owner_user], "SELECT"), ("users", [test_infra().owner_user], "SELECT")]
    member = await stack.sql(stack.auth_db, "SELECT pg_has_role($1, $2, 'MEMBER') AS m", test_infra().app_user,
                             test_infra().owner_user)
    assert member == [{"m": False}]
