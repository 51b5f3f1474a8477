"""The webhook tables under row-level security: forced and fail-closed, a tenant sees only its own subscriptions,
deliveries and sequence, and the use cases answer another tenant's ids as not found."""

from __future__ import annotations

import asyncpg
import pytest
from eva_common.errors import NotFound
from eva_testing.db import TestDatabase, outbox_isolation_problems, rls_problems
from eva_testing.infra import TestInfra

pytestmark = pytest.mark.integration


async def test_every_tenant_table_has_forced_row_level_security(database: TestDatabase, infra: TestInfra) -> None:
    assert await rls_problems(database.owner_dsn, infra.app_user) == []
    assert await outbox_isolation_problems(database.app_dsn) == []


async def test_a_tenant_never_sees_another_tenants_subscriptions_or_deliveries(
    make_app, receiver, kit, database: TestDatabase,
) -> None:
    app = make_app()
    tenant_a, tenant_b = kit.new_tenant(), kit.new_tenant()
    created = await app.webhooks.create_subscription(actor=kit.admin(tenant_a), url=receiver.url("/a"),
                                                     events=["message.received"])
    assert await app.fanout.apply([kit.message_received(tenant_a, "c-1")]) == 1

    app_role = await asyncpg.connect(database.app_dsn)
    try:
        for table in ("webhook_subscriptions", "webhook_deliveries", "webhook_sequences"):
            assert len(await kit.rows(app_role, tenant_a, f"SELECT 1 FROM {table}")) == 1, table
            assert await kit.rows(app_role, tenant_b, f"SELECT 1 FROM {table}") == [], table
            async with app_role.transaction():  # no tenant set: nothing (fail-closed)
                assert await app_role.fetch(f"SELECT 1 FROM {table}") == [], table
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):  # the policy's WITH CHECK
            await kit.rows(app_role, tenant_b, "INSERT INTO webhook_sequences (tenant_id, last_seq) VALUES ($1, 1)",
                           tenant_a)
    finally:
        await app_role.close()

    subscription_id = created.subscription.id
    other = kit.admin(tenant_b)
    with pytest.raises(NotFound) as raised:
        await app.webhooks.get_subscription(principal=other.principal, subscription_id=subscription_id)
    assert raised.value.code == "WEBHOOK_NOT_FOUND"
    with pytest.raises(NotFound):
        await app.webhooks.update_subscription(actor=other, subscription_id=subscription_id, state="paused")
    with pytest.raises(NotFound):
        await app.webhooks.delete_subscription(actor=other, subscription_id=subscription_id)
    assert await app.webhooks.list_subscriptions(principal=other.principal) == []
    assert (await app.webhooks.list_deliveries(principal=other.principal)).items == []
    own = await app.webhooks.list_deliveries(principal=kit.admin(tenant_a).principal)
    assert len(own.items) == 1
    with pytest.raises(NotFound) as raised:
        await app.webhooks.redeliver(actor=other, delivery_id=own.items[0].id)
    assert raised.value.code == "WEBHOOK_DELIVERY_NOT_FOUND"


async def test_the_secret_is_sealed_at_rest_and_never_shown_again(make_app, receiver, kit, app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/s"),
                                                     events=["message.status"], secret="a-secret-of-the-hotel-42")
    assert created.secret == "a-secret-of-the-hotel-42"
    stored = await kit.rows(app_db, tenant, "SELECT secret FROM webhook_subscriptions")
    assert stored[0]["secret"].startswith("k1:") and "hotel" not in stored[0]["secret"]
    shown = await app.webhooks.get_subscription(principal=kit.admin(tenant).principal,
                                                subscription_id=created.subscription.id)
    assert "secret" not in shown.to_json_dict()
    assert "a-secret-of-the-hotel-42" not in str(shown.to_json_dict())

    generated = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/g"),
                                                       events=["message.status"])
    assert generated.secret.startswith("whsec_") and len(generated.secret) >= 40
