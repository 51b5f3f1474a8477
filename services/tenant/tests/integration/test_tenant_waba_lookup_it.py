"""ResolveWabaId through the real gRPC API: the tenant owning a WhatsApp Business Account id (for account-level
webhook changes), for service principals only; a WABA two tenants claim routes nowhere."""

import random

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration

APP_SECRET = "5a4b3c2d1e0f99887766554433221100"


def unique_id() -> str:
    return str(random.randrange(10**14, 10**15))


def credentials(phone_number_id: str, waba_id: str) -> tenant_pb2.PutWhatsAppCredentialsRequest:
    return tenant_pb2.PutWhatsAppCredentialsRequest(
        phone_number_id=phone_number_id, waba_id=waba_id, display_phone_number="+1 555 0199",
        access_token="EAAG-waba-lookup-token-4242", app_secret=APP_SECRET, verify_token=f"verify-{phone_number_id}")


async def test_service_resolves_the_tenant_of_a_waba(stack) -> None:
    admin = await stack.register()
    waba = unique_id()
    await stack.tenant_stub.PutWhatsAppCredentials(credentials(unique_id(), waba),
                                                   metadata=stack.bearer(admin.access_token))
    service = stack.bearer(await stack.service_token())
    resolved = await stack.tenant_stub.ResolveWabaId(tenant_pb2.ResolveWabaIdRequest(waba_id=waba), metadata=service)
    assert (resolved.found, resolved.tenant_id, resolved.tenant_status, resolved.app_secret) == (
        True, admin.tenant.id, "active", APP_SECRET)


async def test_unknown_waba_is_not_found(stack) -> None:
    service = stack.bearer(await stack.service_token())
    resolved = await stack.tenant_stub.ResolveWabaId(tenant_pb2.ResolveWabaIdRequest(waba_id=unique_id()),
                                                     metadata=service)
    assert not resolved.found and resolved.tenant_id == "" and resolved.app_secret == ""


async def test_waba_claimed_by_two_tenants_is_refused(stack) -> None:
    first, second = await stack.register(), await stack.register()
    waba = unique_id()
    service = stack.bearer(await stack.service_token())
    await stack.tenant_stub.PutWhatsAppCredentials(credentials(unique_id(), waba),
                                                   metadata=stack.bearer(first.access_token))
    only_first = await stack.tenant_stub.ResolveWabaId(tenant_pb2.ResolveWabaIdRequest(waba_id=waba),
                                                       metadata=service)
    assert (only_first.found, only_first.tenant_id) == (True, first.tenant.id)

    await stack.tenant_stub.PutWhatsAppCredentials(credentials(unique_id(), waba),
                                                   metadata=stack.bearer(second.access_token))
    contested = await stack.tenant_stub.ResolveWabaId(tenant_pb2.ResolveWabaIdRequest(waba_id=waba),
                                                      metadata=service)
    assert not contested.found and contested.tenant_id == "" and contested.app_secret == ""


async def test_waba_lookup_is_for_services_only(stack) -> None:
    admin = await stack.register()
    waba = unique_id()
    await stack.tenant_stub.PutWhatsAppCredentials(credentials(unique_id(), waba),
                                                   metadata=stack.bearer(admin.access_token))
    call = stack.tenant_stub.ResolveWabaId(tenant_pb2.ResolveWabaIdRequest(waba_id=waba),
                                           metadata=stack.bearer(admin.access_token))
    assert await stack.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")
    service = stack.bearer(await stack.service_token())
    status, code = await stack.failure(stack.tenant_stub.ResolveWabaId(
        tenant_pb2.ResolveWabaIdRequest(waba_id="  "), metadata=service))
    assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_WABA_ID")


async def test_waba_lookup_function_is_not_public(stack) -> None:
    rows = await stack.sql(stack.tenant_db, "SELECT has_function_privilege('public', 'waba_owners(text)', "
                                            "'EXECUTE') AS public_can")
    assert rows[0]["public_can"] is False
