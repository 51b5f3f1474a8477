"""The audit log over real Kafka and gRPC: this service's own mutations and other services' entries reach
audit_logs through the consumer, once each; admins list their tenant's entries with filters and keyset pages;
the table is append-only in the database itself."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_events.audit import AUDIT_RECORDED, AuditEntry
from eva_events.envelope import EventEnvelope, make_event

pytestmark = pytest.mark.integration

SECRETS = {"access_token": "EAAG-audit-access-token", "app_secret": "audit-app-secret-77",
           "verify_token": "audit-verify-token-1"}


def audit_event(tenant_id: str, *, action: str = "user.created", actor_id: str = "u-1", at: datetime | None = None,
                target_type: str | None = "user", target_id: str | None = "u-2", **fields) -> EventEnvelope:
    entry = AuditEntry(actor_type="user", actor_id=actor_id, action=action, target_type=target_type,
                       target_id=target_id, **fields)
    event = make_event(AUDIT_RECORDED, tenant_id=tenant_id, data=entry)
    return event.model_copy(update={"occurred_at": at}) if at is not None else event


async def list_all(harness, tenant_id: str, **filters) -> list[tenant_pb2.AuditLog]:
    page = await harness.stub.ListAuditLogs(tenant_pb2.ListAuditLogsRequest(limit=100, **filters),
                                            metadata=harness.user(tenant_id, "admin"))
    return list(page.items)


async def test_this_services_mutations_are_audited_with_the_callers_context(harness) -> None:
    tenant = await harness.new_tenant("Audited Hotel")
    context = {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (audit test)", "request_id": "req-audit-1"}
    admin = harness.user(tenant.id, "admin", user_id="admin-7", **context)
    phone = str(random.randrange(10**14, 10**15))
    await harness.stub.PutWhatsAppCredentials(
        tenant_pb2.PutWhatsAppCredentialsRequest(phone_number_id=phone, waba_id="9", **SECRETS), metadata=admin)
    await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(locale="es"), metadata=admin)
    key = await harness.stub.CreateApiKey(tenant_pb2.CreateApiKeyRequest(name="zapier", scopes=["messages:read"]),
                                          metadata=admin)
    await harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=key.api_key.id), metadata=admin)
    root = harness.super_admin(user_id="root-9", ip="198.51.100.1")
    for status in ("suspended", "active"):
        await harness.stub.SetTenantStatus(tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status=status),
                                           metadata=root)
    wanted = ["tenant.created", "whatsapp.credentials_updated", "tenant.updated", "api_key.created",
              "api_key.revoked", "tenant.suspended", "tenant.reactivated"]

    async def stored() -> list[tenant_pb2.AuditLog] | None:
        items = await list_all(harness, tenant.id)
        return items if len(items) >= len(wanted) else None

    items = await harness.eventually(stored, what="the audit consumer")
    assert sorted(item.action for item in items) == sorted(wanted)
    by_action = {item.action: item for item in items}
    created = by_action["tenant.created"]
    assert (created.actor_type, created.actor_id, created.target_type, created.target_id) == (
        "service", "service:test-service", "tenant", tenant.id)
    credentials = by_action["whatsapp.credentials_updated"]
    assert (credentials.actor_type, credentials.actor_id, credentials.ip, credentials.user_agent,
            credentials.request_id, credentials.outcome) == (
        "user", "admin-7", "203.0.113.7", "Mozilla/5.0 (audit test)", "req-audit-1", "success")
    assert (credentials.target_type, credentials.target_id) == ("whatsapp_number", phone)
    assert json.loads(credentials.details_json)["accessTokenChanged"] is True
    assert json.loads(by_action["tenant.updated"].details_json) == {"changed": {"locale": "es"}}
    assert by_action["api_key.revoked"].target_id == key.api_key.id
    suspended = by_action["tenant.suspended"]
    assert (suspended.actor_id, suspended.ip, suspended.tenant_id) == ("root-9", "198.51.100.1", tenant.id)
    everything = " ".join(item.SerializeToString().decode("utf-8", "replace") for item in items)
    for secret in (*SECRETS.values(), key.key):
        assert secret not in everything


async def test_other_services_entries_are_stored_once(harness) -> None:
    tenant = await harness.new_tenant()
    event = audit_event(tenant.id, action="auth.login_failed", actor_id=None, target_type=None, target_id=None,
                        outcome="failure", ip="192.0.2.4", details={"reason": "INVALID_CREDENTIALS"})
    poison = EventEnvelope(type=AUDIT_RECORDED, tenant_id=tenant.id, data={"actorType": "robot"})
    topic = harness.settings.audit_events_topic
    for record in (event, poison, event, audit_event(tenant.id, action="user.deleted")):
        await harness.publish(topic, record, key=tenant.id)

    async def both() -> list[tenant_pb2.AuditLog] | None:
        items = await list_all(harness, tenant.id)
        return items if {"auth.login_failed", "user.deleted"} <= {item.action for item in items} else None

    items = await harness.eventually(both, what="the audit consumer past a malformed entry")
    failed = [item for item in items if item.action == "auth.login_failed"]
    assert len(failed) == 1 and failed[0].id == event.id  # delivered twice, stored once
    assert (failed[0].outcome, failed[0].actor_type, failed[0].actor_id, failed[0].ip) == (
        "failure", "user", "", "192.0.2.4")
    assert json.loads(failed[0].details_json) == {"reason": "INVALID_CREDENTIALS"}
    assert await harness.runtime.audit_log.store(event=event) is False  # and once more, directly
    assert poison.id not in {item.id for item in items}


async def test_entries_without_a_tenant_belong_to_the_platform(harness) -> None:
    event = audit_event("", action="auth.login_failed", actor_id=None, outcome="failure")
    assert await harness.runtime.audit_log.store(event=event) is True
    page = await harness.stub.ListAuditLogs(tenant_pb2.ListAuditLogsRequest(action="auth.login_failed"),
                                            metadata=harness.super_admin())
    assert event.id in {item.id for item in page.items}
    assert {item.tenant_id for item in page.items} == {harness.platform.id}


async def test_filters_and_keyset_pages(harness) -> None:
    tenant = await harness.new_tenant()
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    events = []
    for index in range(7):
        events.append(audit_event(tenant.id, action="user.updated" if index % 2 else "user.created",
                                  actor_id="alice" if index < 4 else "bob", target_id=f"u-{index % 3}",
                                  at=base + timedelta(minutes=index)))
    tie = audit_event(tenant.id, action="user.created", actor_id="bob", at=base + timedelta(minutes=6))  # same time
    events.append(tie)
    for event in events:
        assert await harness.runtime.audit_log.store(event=event)
    admin = harness.user(tenant.id, "admin")

    seen, cursor, pages = [], "", 0
    while True:
        page = await harness.stub.ListAuditLogs(  # (March 2025: not the tenant.created entry of today)
            tenant_pb2.ListAuditLogsRequest(limit=3, cursor=cursor, to_time="2025-04-01T00:00:00Z"), metadata=admin)
        seen += list(page.items)
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 3 and len(seen) == 8 and len({item.id for item in seen}) == 8
    ordered = sorted(events, key=lambda event: (event.occurred_at, event.id), reverse=True)
    assert [item.id for item in seen] == [event.id for event in ordered]  # occurred_at desc, then id

    async def ids(**filters) -> set[str]:
        return {item.id for item in await list_all(harness, tenant.id, **filters)}

    assert await ids(actor_id="alice") == {event.id for event in events[:4]}
    assert await ids(from_time=base.isoformat()) >= {event.id for event in events}
    assert await ids(action="user.updated") == {events[1].id, events[3].id, events[5].id}
    assert await ids(target_type="user", target_id="u-0") == {events[0].id, events[3].id, events[6].id}
    assert await ids(from_time=(base + timedelta(minutes=2)).isoformat(),
                     to_time=(base + timedelta(minutes=4)).isoformat()) == {events[2].id, events[3].id}
    assert await ids(actor_id="bob", action="user.created", from_time=(base + timedelta(minutes=6)).isoformat()) == {
        events[6].id, tie.id}
    assert await ids(actor_id="nobody") == set()


async def test_list_audit_logs_validates(harness) -> None:
    tenant = await harness.new_tenant()
    admin = harness.user(tenant.id, "admin")
    for request, code in (
        (tenant_pb2.ListAuditLogsRequest(from_time="last week"), "INVALID_TIME"),
        (tenant_pb2.ListAuditLogsRequest(from_time="2025-03-02T00:00:00Z", to_time="2025-03-01T00:00:00Z"),
         "INVALID_TIME_RANGE"),
        (tenant_pb2.ListAuditLogsRequest(cursor="bogus"), "INVALID_CURSOR"),
        (tenant_pb2.ListAuditLogsRequest(actor_id="x" * 201), "INVALID_FILTER"),
    ):
        assert await harness.failure(harness.stub.ListAuditLogs(request, metadata=admin)) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)


async def test_only_the_tenants_admins_read_its_log(harness) -> None:
    tenant_a, tenant_b = await harness.new_tenant("Log A"), await harness.new_tenant("Log B")
    entry_a, entry_b = audit_event(tenant_a.id), audit_event(tenant_b.id)
    for event in (entry_a, entry_b):
        await harness.runtime.audit_log.store(event=event)
    ids_a = {item.id for item in await list_all(harness, tenant_a.id)}
    assert entry_a.id in ids_a and entry_b.id not in ids_a
    super_admin_of_a = harness.user(tenant_a.id, "super_admin")
    page = await harness.stub.ListAuditLogs(tenant_pb2.ListAuditLogsRequest(), metadata=super_admin_of_a)
    assert {item.tenant_id for item in page.items} == {tenant_a.id}
    for caller, expected in (
        (harness.user(tenant_a.id, "attendant"), "FORBIDDEN_ROLE"),
        (harness.api_key(tenant_a.id, ["usage:read", "messages:read"]), "API_KEY_NOT_ALLOWED"),
        (harness.service(), "USER_ONLY"),
    ):
        assert await harness.failure(harness.stub.ListAuditLogs(tenant_pb2.ListAuditLogsRequest(),
                                                                metadata=caller)) == (
            grpc.StatusCode.PERMISSION_DENIED, expected)


async def test_the_log_is_append_only_in_the_database(harness) -> None:
    tenant = await harness.new_tenant()
    event = audit_event(tenant.id, action="user.created")
    await harness.runtime.audit_log.store(event=event)
    app = await asyncpg.connect(harness.db.app_url.replace("postgresql+asyncpg://", "postgresql://"))
    owner = await asyncpg.connect(harness.db.owner_dsn)
    try:
        for connection in (app, owner):
            for statement in ("UPDATE audit_logs SET action = 'user.nothing' WHERE id = $1",
                              "DELETE FROM audit_logs WHERE id = $1"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
                    async with connection.transaction():
                        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant.id)
                        await connection.execute(statement, event.id)
                assert refused.value.sqlstate == "42501"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with connection.transaction():
                    await connection.execute("TRUNCATE audit_logs")
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as trigger:  # the owner is stopped by the trigger
            async with owner.transaction():
                await owner.execute("SELECT set_config('app.tenant_id', $1, true)", tenant.id)
                await owner.execute("DELETE FROM audit_logs WHERE id = $1", event.id)
        assert "append-only" in str(trigger.value)
        async with app.transaction():  # while the app role may still add entries and read them
            await app.execute("SELECT set_config('app.tenant_id', $1, true)", tenant.id)
            await app.execute("INSERT INTO audit_logs (id, tenant_id, actor_type, action, outcome, occurred_at) "
                              "VALUES ($1, $2, 'service', 'x.y', 'success', now())", str(uuid.uuid4()), tenant.id)
            rows = await app.fetch("SELECT action FROM audit_logs WHERE id = $1", event.id)
        assert [row["action"] for row in rows] == ["user.created"]
    finally:
        await app.close()
        await owner.close()
