"""Tenants administration over real gRPC: super admins list (filters, keyset pages), create and suspend tenants;
admins update their own tenant; nobody else may. A suspended tenant's webhooks still resolve, its API keys
verify as suspended, and it cannot send."""

from __future__ import annotations

import random
import uuid

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration


async def test_super_admins_create_tenants_on_a_plan(harness) -> None:
    tenant = await harness.stub.AdminCreateTenant(
        tenant_pb2.AdminCreateTenantRequest(name="Grand Hotel Lisboa", plan="pro", timezone="Europe/Lisbon",
                                            locale="pt-PT"), metadata=harness.super_admin())
    assert (tenant.plan, tenant.status, tenant.timezone, tenant.locale) == ("pro", "active", "Europe/Lisbon", "pt-PT")
    assert tenant.slug.startswith("grand-hotel-lisboa")
    default = await harness.stub.AdminCreateTenant(tenant_pb2.AdminCreateTenantRequest(name="Plain Inn"),
                                                   metadata=harness.super_admin())
    assert (default.plan, default.timezone, default.locale) == ("starter", "UTC", "en")
    limits = await harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(tenant_id=tenant.id),
                                              metadata=harness.service())
    assert (limits.plan, limits.monthly_message_quota, limits.seats) == ("pro", 100_000, 25)


async def test_admin_create_tenant_validates(harness) -> None:
    for request, code in (
        (tenant_pb2.AdminCreateTenantRequest(name="X", plan="platinum"), "INVALID_PLAN"),
        (tenant_pb2.AdminCreateTenantRequest(name="X", plan="no such plan!"), "INVALID_PLAN"),
        (tenant_pb2.AdminCreateTenantRequest(name="  "), "TENANT_NAME_REQUIRED"),
        (tenant_pb2.AdminCreateTenantRequest(name="X", timezone="Mars/Olympus"), "INVALID_TIMEZONE"),
    ):
        assert await harness.failure(harness.stub.AdminCreateTenant(request, metadata=harness.super_admin())) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)


@pytest.mark.parametrize("who", ["admin", "attendant"])
async def test_only_super_admins_administer_tenants(harness, who: str) -> None:
    own = await harness.new_tenant("Own Hotel")
    other = await harness.new_tenant("Other Hotel")
    caller = harness.user(own.id, who)
    for call in (
        harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(), metadata=caller),
        harness.stub.AdminCreateTenant(tenant_pb2.AdminCreateTenantRequest(name="Sneaky"), metadata=caller),
        harness.stub.SetTenantStatus(tenant_pb2.SetTenantStatusRequest(tenant_id=other.id, status="suspended"),
                                     metadata=caller),
        harness.stub.SetTenantStatus(tenant_pb2.SetTenantStatusRequest(tenant_id=own.id, status="suspended"),
                                     metadata=caller),
    ):
        assert await harness.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    still = await harness.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=other.id), metadata=harness.service())
    assert still.status == "active"


async def test_services_and_api_keys_do_not_administer_tenants(harness) -> None:
    tenant = await harness.new_tenant()
    assert await harness.failure(harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(),
                                                          metadata=harness.service())) == (
        grpc.StatusCode.PERMISSION_DENIED, "USER_ONLY")
    key = harness.api_key(tenant.id, ["usage:read"])
    assert await harness.failure(harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(), metadata=key)) == (
        grpc.StatusCode.PERMISSION_DENIED, "API_KEY_NOT_ALLOWED")
    assert await harness.failure(harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(name="Keyed"),
                                                           metadata=key)) == (
        grpc.StatusCode.PERMISSION_DENIED, "API_KEY_NOT_ALLOWED")


async def test_list_tenants_pages_through_every_tenant_with_filters(harness) -> None:
    marker = uuid.uuid4().hex[:8]
    created = [await harness.new_tenant(f"Pager {marker} {index}") for index in range(5)]
    await harness.stub.SetTenantStatus(tenant_pb2.SetTenantStatusRequest(tenant_id=created[1].id, status="suspended"),
                                       metadata=harness.super_admin())
    seen: list[str] = []
    cursor = ""
    while True:
        page = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q=marker.upper(), limit=2, cursor=cursor),
                                              metadata=harness.super_admin())
        assert len(page.items) <= 2
        seen += [item.id for item in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [tenant.id for tenant in reversed(created)]  # newest first, each once
    suspended = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q=marker, status="suspended"),
                                               metadata=harness.super_admin())
    assert [item.id for item in suspended.items] == [created[1].id]
    by_slug = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q=created[3].slug),
                                             metadata=harness.super_admin())
    assert [item.id for item in by_slug.items] == [created[3].id]
    everyone = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(limit=100),
                                              metadata=harness.super_admin())
    assert 5 < len(everyone.items) <= 100  # other tenants too (across tenants), in pages of at most 100
    platform = await harness.stub.ListTenants(tenant_pb2.ListTenantsRequest(q="platform"),
                                              metadata=harness.super_admin())
    assert harness.platform.id in {item.id for item in platform.items}


async def test_list_tenants_refuses_bad_input(harness) -> None:
    for request, code in (
        (tenant_pb2.ListTenantsRequest(status="deleted"), "INVALID_STATUS"),
        (tenant_pb2.ListTenantsRequest(cursor="not-a-cursor"), "INVALID_CURSOR"),
        (tenant_pb2.ListTenantsRequest(limit=-1), "VALIDATION_FAILED"),
        (tenant_pb2.ListTenantsRequest(limit=101), "VALIDATION_FAILED"),
        (tenant_pb2.ListTenantsRequest(q="x" * 101), "INVALID_QUERY"),
    ):
        assert await harness.failure(harness.stub.ListTenants(request, metadata=harness.super_admin())) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)


async def test_suspending_and_reactivating(harness) -> None:
    tenant = await harness.new_tenant("Sleepy Hotel")
    admin = harness.user(tenant.id, "admin")
    phone = str(random.randrange(10**14, 10**15))
    await harness.stub.PutWhatsAppCredentials(
        tenant_pb2.PutWhatsAppCredentialsRequest(phone_number_id=phone, waba_id="42", access_token="EAAG-suspend-1",
                                                 app_secret="suspend-app-secret", verify_token="suspend-verify"),
        metadata=admin)
    created = await harness.stub.CreateApiKey(tenant_pb2.CreateApiKeyRequest(name="n8n", scopes=["messages:send"]),
                                              metadata=admin)

    suspended = await harness.stub.SetTenantStatus(
        tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status="suspended"), metadata=harness.super_admin())
    assert suspended.status == "suspended"
    again = await harness.stub.SetTenantStatus(  # idempotent
        tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status="suspended"), metadata=harness.super_admin())
    assert again.status == "suspended"

    service = harness.service()
    resolved = await harness.stub.ResolvePhoneNumber(tenant_pb2.ResolvePhoneNumberRequest(phone_number_id=phone),
                                                     metadata=service)
    assert (resolved.found, resolved.tenant_id, resolved.tenant_status, resolved.app_secret) == (
        True, tenant.id, "suspended", "suspend-app-secret")  # ingest keeps storing its webhooks
    verified = await harness.stub.VerifyApiKey(tenant_pb2.VerifyApiKeyRequest(api_key=created.key), metadata=service)
    assert (verified.valid, verified.tenant_id, verified.tenant_status) == (True, tenant.id, "suspended")
    assert await harness.failure(harness.stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant.id), metadata=service)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED")

    active = await harness.stub.SetTenantStatus(
        tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status="active"), metadata=harness.super_admin())
    assert active.status == "active"
    sending = await harness.stub.GetSendingCredentials(tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant.id),
                                                       metadata=service)
    assert sending.access_token == "EAAG-suspend-1"


async def test_set_tenant_status_refusals(harness) -> None:
    tenant = await harness.new_tenant()
    root = harness.super_admin()
    for request, expected in (
        (tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status="deleted"),
         (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_STATUS")),
        (tenant_pb2.SetTenantStatusRequest(tenant_id="no-such-tenant", status="suspended"),
         (grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")),
        (tenant_pb2.SetTenantStatusRequest(tenant_id=harness.platform.id, status="suspended"),
         (grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_SUSPEND_OWN_TENANT")),
    ):
        assert await harness.failure(harness.stub.SetTenantStatus(request, metadata=root)) == expected


async def test_admins_update_their_own_tenant(harness) -> None:
    mine, theirs = await harness.new_tenant("Mine Hotel"), await harness.new_tenant("Theirs Hotel")
    admin = harness.user(mine.id, "admin")
    updated = await harness.stub.UpdateTenant(
        tenant_pb2.UpdateTenantRequest(name="Mine Hotel & Spa", timezone="America/Sao_Paulo"), metadata=admin)
    assert (updated.id, updated.name, updated.timezone, updated.locale, updated.slug) == (
        mine.id, "Mine Hotel & Spa", "America/Sao_Paulo", "en", mine.slug)
    only_locale = await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(locale="pt-BR"), metadata=admin)
    assert (only_locale.name, only_locale.timezone, only_locale.locale) == (
        "Mine Hotel & Spa", "America/Sao_Paulo", "pt-BR")
    untouched = await harness.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=theirs.id),
                                             metadata=harness.service())
    assert untouched.name == "Theirs Hotel"


async def test_update_tenant_validates_and_refuses_attendants(harness) -> None:
    tenant = await harness.new_tenant()
    admin = harness.user(tenant.id, "admin")
    for request, code in (
        (tenant_pb2.UpdateTenantRequest(timezone="Nowhere/City"), "INVALID_TIMEZONE"),
        (tenant_pb2.UpdateTenantRequest(timezone=""), "INVALID_TIMEZONE"),
        (tenant_pb2.UpdateTenantRequest(locale="not a locale"), "INVALID_LOCALE"),
        (tenant_pb2.UpdateTenantRequest(name=""), "TENANT_NAME_REQUIRED"),
    ):
        assert await harness.failure(harness.stub.UpdateTenant(request, metadata=admin)) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)
    assert await harness.failure(harness.stub.UpdateTenant(
        tenant_pb2.UpdateTenantRequest(name="Attendant's"), metadata=harness.user(tenant.id, "attendant"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    assert await harness.failure(harness.stub.UpdateTenant(
        tenant_pb2.UpdateTenantRequest(name="Service's"), metadata=harness.service())) == (
        grpc.StatusCode.PERMISSION_DENIED, "USER_ONLY")
