"""Row-level security on webhook_events: a tenant's delivery rows only with that tenant set, unrouted rows only
through the owner's SECURITY DEFINER function, nothing at all for the app role with no tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from eva_testing.db import TestDatabase, rls_problems
from eva_testing.infra import TestInfra
from webhook_ingest_service.models import DeliveryState
from webhook_ingest_service.repository import UnroutedDelivery, WebhookEventRepository

pytestmark = pytest.mark.integration

INSERT = ("INSERT INTO webhook_events (delivery_id, tenant_id, received_at, state, payload) "
          "VALUES ($1, $2, now(), 'received', '{}')")


def raw(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def visible(connection: asyncpg.Connection, ids: list[str], tenant: str | None = None) -> set[str]:
    async with connection.transaction():
        if tenant is not None:
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        rows = await connection.fetch("SELECT delivery_id FROM webhook_events WHERE delivery_id = ANY($1::text[])",
                                      ids)
    return {row["delivery_id"] for row in rows}


async def test_the_catalog_has_no_isolation_problem(database: TestDatabase, infra: TestInfra) -> None:
    assert await rls_problems(database.owner_dsn, infra.app_user) == []
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        function = await owner.fetchrow(
            "SELECT prosecdef, proconfig, pg_get_userbyid(proowner) AS owner, "
            "has_function_privilege($1, p.oid, 'EXECUTE') AS app_may_call, "
            "has_function_privilege('public', p.oid, 'EXECUTE') AS anyone_may_call "
            "FROM pg_proc p WHERE proname = 'webhook_record_unrouted'", infra.app_user)
    finally:
        await owner.close()
    assert function["prosecdef"] and function["proconfig"] == ["search_path=public"]
    assert function["owner"] == infra.owner_user
    assert function["app_may_call"] and not function["anyone_may_call"]


async def test_the_app_role_sees_and_writes_only_its_transactions_tenant(
    database: TestDatabase, repository: WebhookEventRepository
) -> None:
    tenant_a, tenant_b = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    row_a, row_b, unrouted = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    for delivery_id, tenant in ((row_a, tenant_a), (row_b, tenant_b)):
        assert await repository.record_received(delivery_id=delivery_id, tenant_id=tenant, phone_number_id="pn",
                                                received_at=now, payload={"entry": []})
    await repository.record_unrouted([UnroutedDelivery(delivery_id=unrouted, routing_key="pn-nobody",
                                                       received_at=now, payload={"entry": []}, detail="nobody")])
    ids = [row_a, row_b, unrouted]

    app = await asyncpg.connect(raw(database.app_url))
    try:
        assert await visible(app, ids) == set()  # no tenant: nothing, not even the unrouted row
        assert await visible(app, ids, tenant_a) == {row_a}
        assert await visible(app, ids, tenant_b) == {row_b}
        async with app.transaction():
            await app.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_a)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # B's row under A: SQLSTATE 42501
                async with app.transaction():
                    await app.execute(INSERT, str(uuid.uuid4()), tenant_b)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # nor a row of no tenant
                async with app.transaction():
                    await app.execute(INSERT, str(uuid.uuid4()), None)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # nor move A's row to B
                async with app.transaction():
                    await app.execute("UPDATE webhook_events SET tenant_id = $1 WHERE delivery_id = $2",
                                      tenant_b, row_a)
            # B's row is simply not there for A: no update, no delete
            assert await app.execute("UPDATE webhook_events SET state = 'failed' WHERE delivery_id = $1",
                                     row_b) == "UPDATE 0"
            assert await app.execute("DELETE FROM webhook_events WHERE delivery_id = $1", row_b) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute(INSERT, str(uuid.uuid4()), None)
    finally:
        await app.close()

    owner = await asyncpg.connect(database.owner_dsn)
    try:  # the owner (operators, the function) sees the unrouted row, and tenants' rows only with the tenant set
        assert await visible(owner, ids) == {unrouted}
        assert await visible(owner, ids, tenant_b) == {row_b, unrouted}
    finally:
        await owner.close()
    row = await repository.get(row_b, tenant_id=tenant_b)
    assert row is not None and row.state == DeliveryState.RECEIVED
    assert await repository.get(row_b, tenant_id=tenant_a) is None


async def test_unrouted_parts_are_recorded_once(database: TestDatabase, repository: WebhookEventRepository) -> None:
    delivery = UnroutedDelivery(delivery_id=str(uuid.uuid4()), routing_key="pn-nobody", received_at=datetime.now(UTC),
                                payload={"entry": [{"id": "waba"}]}, detail="no tenant owns pn-nobody")
    await repository.record_unrouted([delivery])
    await repository.record_unrouted([delivery])  # a retried request changes nothing
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        rows = await owner.fetch("SELECT tenant_id, state, phone_number_id, detail FROM webhook_events "
                                 "WHERE delivery_id = $1", delivery.delivery_id)
    finally:
        await owner.close()
    assert [tuple(row) for row in rows] == [(None, "unrouted", "pn-nobody", "no tenant owns pn-nobody")]
