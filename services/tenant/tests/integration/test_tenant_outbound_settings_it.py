"""The settings outbound messaging reads, through the real gRPC API and database: the tenant's read-receipt policy,
the number's coexistence and throughput, its health as messaging reports it (ReportWhatsAppHealth), and the
sending credentials that carry all of them. Events and audit entries are read from the outbox, where they are
written in the change's transaction."""

from __future__ import annotations

import json
import random
from typing import Any

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_events.tenant import WhatsAppHealthChanged

pytestmark = pytest.mark.integration

ACCESS_TOKEN = "EAAGm0PX4ZCpsBAKZOutboundToken1234"
SECRETS = {"access_token": ACCESS_TOKEN, "app_secret": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
           "verify_token": "outbound-verify-token-77"}


def unique_phone() -> str:
    return str(random.randrange(10**14, 10**15))


def put_request(phone: str, **fields: Any) -> tenant_pb2.PutWhatsAppCredentialsRequest:
    values = {"phone_number_id": phone, "waba_id": "102290129340398", "display_phone_number": "+351 210 000 000",
              **SECRETS, **fields}
    return tenant_pb2.PutWhatsAppCredentialsRequest(**values)


async def outbox(harness, tenant_id: str, topic: str) -> list[dict[str, Any]]:
    """The tenant's envelopes written to `topic`, oldest first."""
    rows = await harness.sql("SELECT payload FROM outbox WHERE tenant_id = $1 AND topic = $2 ORDER BY id",
                             tenant_id, topic, tenant=tenant_id)
    return [json.loads(bytes(row["payload"])) for row in rows]


async def events_of(harness, tenant_id: str, event_type: str) -> list[dict[str, Any]]:
    return [event["data"] for event in await outbox(harness, tenant_id, harness.settings.tenant_events_topic)
            if event["type"] == event_type]


async def audits_of(harness, tenant_id: str, action: str) -> list[dict[str, Any]]:
    return [event["data"] for event in await outbox(harness, tenant_id, harness.settings.audit_events_topic)
            if event["data"]["action"] == action]


async def report(harness, tenant_id: str, *, healthy: bool, code: int = 0, detail: str = "",
                 metadata: Any = None) -> tenant_pb2.WhatsAppCredentialsView:
    view: tenant_pb2.WhatsAppCredentialsView = await harness.stub.ReportWhatsAppHealth(
        tenant_pb2.ReportWhatsAppHealthRequest(tenant_id=tenant_id, healthy=healthy, code=code, detail=detail),
        metadata=metadata or harness.service("messaging"))
    return view


# ---------------------------------------------------------------- read receipts


async def test_read_receipts_default_to_on_read_everywhere_a_tenant_is_shown(harness) -> None:
    tenant = await harness.new_tenant("Receipts Default Hotel")
    assert tenant.read_receipts == "on_read"
    fetched = await harness.stub.GetTenant(tenant_pb2.GetTenantRequest(), metadata=harness.user(tenant.id,
                                                                                                "attendant"))
    by_slug = await harness.stub.GetTenantBySlug(tenant_pb2.GetTenantBySlugRequest(slug=tenant.slug),
                                                 metadata=harness.service())
    listed = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q=tenant.slug),
                                            metadata=harness.super_admin())
    assert [fetched.read_receipts, by_slug.read_receipts, [t.read_receipts for t in listed.items]] == [
        "on_read", "on_read", ["on_read"]]
    (created,) = await events_of(harness, tenant.id, "tenant.created")
    assert created["readReceipts"] == "on_read"


async def test_an_admin_turns_read_receipts_off_audited_and_announced(harness) -> None:
    tenant = await harness.new_tenant("Receipts Off Hotel")
    admin = harness.user(tenant.id, "admin", user_id="admin-receipts")
    changed = await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(read_receipts=" Never "),
                                              metadata=admin)
    assert changed.read_receipts == "never"
    assert (await harness.stub.GetTenant(tenant_pb2.GetTenantRequest(), metadata=admin)).read_receipts == "never"
    listed = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q=tenant.slug),
                                            metadata=harness.super_admin())
    assert [t.read_receipts for t in listed.items] == ["never"]

    (updated,) = await events_of(harness, tenant.id, "tenant.updated")
    assert (updated["readReceipts"], updated["changed"]) == ("never", ["read_receipts"])
    (audit,) = await audits_of(harness, tenant.id, "tenant.updated")
    assert audit["details"] == {"changed": {"read_receipts": "never"}} and audit["actorId"] == "admin-receipts"

    again = await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(read_receipts="never"), metadata=admin)
    assert again.read_receipts == "never"
    assert len(await events_of(harness, tenant.id, "tenant.updated")) == 1  # nothing changed, nothing announced
    name_only = await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(name="Renamed Receipts Hotel"),
                                                metadata=admin)
    assert name_only.read_receipts == "never"  # absent: unchanged


async def test_read_receipts_are_validated_and_admin_only(harness) -> None:
    tenant = await harness.new_tenant("Receipts Checked Hotel")
    for value in ("sometimes", "", "on-read"):
        assert await harness.failure(harness.stub.UpdateTenant(
            tenant_pb2.UpdateTenantRequest(read_receipts=value), metadata=harness.user(tenant.id, "admin"))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_READ_RECEIPTS"), value
    status, _ = await harness.failure(harness.stub.UpdateTenant(
        tenant_pb2.UpdateTenantRequest(read_receipts="never"), metadata=harness.user(tenant.id, "attendant")))
    assert status == grpc.StatusCode.PERMISSION_DENIED
    assert (await harness.sql("SELECT read_receipts FROM tenants WHERE id = $1", tenant.id))[0][0] == "on_read"


# ---------------------------------------------------------------- coexistence and throughput


async def test_coexistence_and_throughput_are_stored_kept_when_absent_and_announced(harness) -> None:
    tenant = await harness.new_tenant("Coexistence Hotel")
    admin = harness.user(tenant.id, "admin")
    phone = unique_phone()
    first = await harness.stub.PutWhatsAppCredentials(put_request(phone), metadata=admin)
    assert (first.coexistence, first.throughput_mps) == (False, 0)
    assert (first.health.status, first.health.code, first.health.detail) == ("healthy", 0, "")
    assert first.health.since.endswith("Z")

    both = await harness.stub.PutWhatsAppCredentials(put_request(phone, coexistence=True, throughput_mps=20),
                                                     metadata=admin)
    assert (both.coexistence, both.throughput_mps) == (True, 20)
    kept = await harness.stub.PutWhatsAppCredentials(put_request(phone, access_token=""), metadata=admin)
    assert (kept.coexistence, kept.throughput_mps) == (True, 20)  # absent: unchanged
    turned_off = await harness.stub.PutWhatsAppCredentials(put_request(phone, coexistence=False, throughput_mps=0),
                                                           metadata=admin)
    assert (turned_off.coexistence, turned_off.throughput_mps) == (False, 0)  # present (even false or 0): set
    fetched = await harness.stub.GetWhatsAppCredentials(tenant_pb2.GetWhatsAppCredentialsRequest(), metadata=admin)
    assert fetched == turned_off

    updates = await events_of(harness, tenant.id, "whatsapp.credentials_updated")
    assert [(u["coexistence"], u["throughputMps"]) for u in updates] == [(False, 0), (True, 20), (True, 20),
                                                                         (False, 0)]
    audits = await audits_of(harness, tenant.id, "whatsapp.credentials_updated")
    assert (audits[1]["details"]["coexistence"], audits[1]["details"]["throughputMps"]) == (True, 20)


@pytest.mark.parametrize("throughput", [-1, 1001, 2**31 - 1])
async def test_throughput_outside_0_to_1000_is_refused(harness, throughput: int) -> None:
    tenant = await harness.new_tenant("Throughput Hotel")
    admin = harness.user(tenant.id, "admin")
    assert await harness.failure(harness.stub.PutWhatsAppCredentials(
        put_request(unique_phone(), throughput_mps=throughput), metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_THROUGHPUT")
    assert await harness.sql("SELECT 1 FROM whatsapp_credentials WHERE tenant_id = $1", tenant.id,
                             tenant=tenant.id) == []
    top = await harness.stub.PutWhatsAppCredentials(put_request(unique_phone(), throughput_mps=1000), metadata=admin)
    assert top.throughput_mps == 1000


async def test_sending_credentials_carry_what_the_sender_needs(harness) -> None:
    tenant = await harness.new_tenant("Sender Hotel")
    admin = harness.user(tenant.id, "admin")
    phone = unique_phone()
    await harness.stub.PutWhatsAppCredentials(put_request(phone, coexistence=True, throughput_mps=15),
                                              metadata=admin)
    await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(read_receipts="never"), metadata=admin)
    sending = await harness.stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant.id), metadata=harness.service("messaging"))
    assert sending == tenant_pb2.SendingCredentials(
        tenant_id=tenant.id, phone_number_id=phone, access_token=ACCESS_TOKEN, waba_id="102290129340398",
        display_phone_number="+351 210 000 000", coexistence=True, throughput_mps=15, tenant_status="active",
        read_receipts="never", health="healthy")
    await report(harness, tenant.id, healthy=False, code=190, detail="access token expired")
    unhealthy = await harness.stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant.id), metadata=harness.service("messaging"))
    assert unhealthy.health == "unhealthy"


# ---------------------------------------------------------------- health


async def test_reported_health_changes_are_stored_announced_and_audited_once(harness) -> None:
    tenant = await harness.new_tenant("Health Hotel")
    admin = harness.user(tenant.id, "admin")
    phone = unique_phone()
    await harness.stub.PutWhatsAppCredentials(put_request(phone), metadata=admin)

    sick = await report(harness, tenant.id, healthy=False, code=190, detail="  access token\nexpired ")
    assert (sick.health.status, sick.health.code, sick.health.detail) == ("unhealthy", 190, "access token expired")
    assert sick.configured and sick.phone_number_id == phone and sick.access_token.last4 == ACCESS_TOKEN[-4:]
    seen = await harness.stub.GetWhatsAppCredentials(tenant_pb2.GetWhatsAppCredentialsRequest(), metadata=admin)
    assert seen.health == sick.health
    still = await report(harness, tenant.id, healthy=False, code=190, detail="access token expired again")
    assert still.health == sick.health  # no change of status: nothing stored, nothing announced

    changes = await events_of(harness, tenant.id, "whatsapp.health_changed")
    assert len(changes) == 1
    announced = WhatsAppHealthChanged.model_validate(changes[0])
    assert (announced.tenant_id, announced.status, announced.previous_status, announced.code, announced.detail) == (
        tenant.id, "unhealthy", "healthy", 190, "access token expired")
    assert changes[0]["since"] == sick.health.since
    (audit,) = await audits_of(harness, tenant.id, "whatsapp.health_changed")
    assert (audit["actorType"], audit["actorId"], audit["targetType"], audit["targetId"]) == (
        "service", "service:messaging", "whatsapp_number", phone)
    assert audit["details"] == {"status": "unhealthy", "previousStatus": "healthy", "code": 190,
                                "detail": "access token expired"}

    well = await report(harness, tenant.id, healthy=True, code=190, detail="ignored when healthy")
    assert (well.health.status, well.health.code, well.health.detail) == ("healthy", 0, "")
    changes = await events_of(harness, tenant.id, "whatsapp.health_changed")
    assert [(c["status"], c["previousStatus"], c["code"], c["detail"]) for c in changes] == [
        ("unhealthy", "healthy", 190, "access token expired"), ("healthy", "unhealthy", None, None)]
    assert len(await audits_of(harness, tenant.id, "whatsapp.health_changed")) == 2


async def test_a_new_access_token_makes_the_number_healthy_again(harness) -> None:
    tenant = await harness.new_tenant("Token Renewed Hotel")
    admin = harness.user(tenant.id, "admin")
    phone = unique_phone()
    await harness.stub.PutWhatsAppCredentials(put_request(phone), metadata=admin)
    await report(harness, tenant.id, healthy=False, code=190, detail="access token expired")

    same_token = await harness.stub.PutWhatsAppCredentials(put_request(phone, access_token="", throughput_mps=50),
                                                           metadata=admin)
    assert same_token.health.status == "unhealthy"  # no new token: Meta still refuses the stored one
    renewed = await harness.stub.PutWhatsAppCredentials(
        put_request(phone, access_token="EAAG-renewed-access-token-5678"), metadata=admin)
    assert (renewed.health.status, renewed.health.code, renewed.health.detail) == ("healthy", 0, "")
    assert renewed.throughput_mps == 50
    changes = await events_of(harness, tenant.id, "whatsapp.health_changed")
    assert [(c["status"], c["previousStatus"]) for c in changes] == [("unhealthy", "healthy"),
                                                                      ("healthy", "unhealthy")]
    again = await harness.stub.PutWhatsAppCredentials(
        put_request(phone, access_token="EAAG-renewed-access-token-9999"), metadata=admin)
    assert again.health.status == "healthy"
    assert len(await events_of(harness, tenant.id, "whatsapp.health_changed")) == 2  # already healthy: no event


async def test_only_services_report_health_and_only_for_a_configured_number(harness) -> None:
    tenant = await harness.new_tenant("Health Guarded Hotel")
    for caller in (harness.user(tenant.id, "admin"), harness.super_admin(),
                   harness.api_key(tenant.id, ["messages:send"])):
        assert await harness.failure(report(harness, tenant.id, healthy=False, code=190, metadata=caller)) == (
            grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")
    assert await harness.failure(report(harness, tenant.id, healthy=False, code=190)) == (
        grpc.StatusCode.NOT_FOUND, "WHATSAPP_NOT_CONFIGURED")
    assert await harness.failure(report(harness, "", healthy=False, code=190)) == (
        grpc.StatusCode.PERMISSION_DENIED, "TENANT_REQUIRED")
    assert await events_of(harness, tenant.id, "whatsapp.health_changed") == []
