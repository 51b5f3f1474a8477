"""WhatsApp credentials through the real gRPC API: admins write them, secrets are sealed at rest and shown only
as last4, and only services read them back decrypted."""

import random

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration

ACCESS_TOKEN = "EAAGm0PX4ZCpsBAKZAccessTokenValue9876"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "hotel-verify-token-5521"


def put_request(phone_number_id: str, **changes: str) -> tenant_pb2.PutWhatsAppCredentialsRequest:
    fields = {"phone_number_id": phone_number_id, "waba_id": "102290129340398", "display_phone_number": "+1 555 0100",
              "access_token": ACCESS_TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, **changes}
    return tenant_pb2.PutWhatsAppCredentialsRequest(**fields)


def unique_phone() -> str:
    return str(random.randrange(10**14, 10**15))


async def test_admin_stores_credentials_sealed_and_sees_only_last4(stack) -> None:
    admin = await stack.register()
    phone = unique_phone()
    view = await stack.tenant_stub.PutWhatsAppCredentials(put_request(phone), metadata=stack.bearer(admin.access_token))
    assert view.configured and view.phone_number_id == phone and view.waba_id == "102290129340398"
    assert (view.access_token.set, view.access_token.last4) == (True, ACCESS_TOKEN[-4:])
    assert (view.app_secret.set, view.app_secret.last4) == (True, APP_SECRET[-4:])
    assert (view.verify_token.set, view.verify_token.last4) == (True, VERIFY_TOKEN[-4:])
    serialized = view.SerializeToString()
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret.encode() not in serialized

    (row,) = await stack.sql(stack.tenant_db, "SELECT * FROM whatsapp_credentials WHERE tenant_id = $1",
                             admin.tenant.id)
    stored = " ".join(str(value) for value in row.values())
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in stored
    assert row["access_token_ciphertext"].startswith("k1:") and row["key_id"] == "k1"
    assert len(row["verify_token_digest"]) == 64

    again = await stack.tenant_stub.GetWhatsAppCredentials(
        tenant_pb2.GetWhatsAppCredentialsRequest(), metadata=stack.bearer(admin.access_token))
    assert again == view


async def test_unconfigured_tenant_view(stack) -> None:
    admin = await stack.register()
    view = await stack.tenant_stub.GetWhatsAppCredentials(
        tenant_pb2.GetWhatsAppCredentialsRequest(), metadata=stack.bearer(admin.access_token))
    assert not view.configured and not view.access_token.set


async def test_update_with_empty_secrets_keeps_the_stored_ones(stack) -> None:
    admin = await stack.register()
    phone = unique_phone()
    metadata = stack.bearer(admin.access_token)
    await stack.tenant_stub.PutWhatsAppCredentials(put_request(phone), metadata=metadata)
    view = await stack.tenant_stub.PutWhatsAppCredentials(
        put_request(phone, access_token="EAAG-rotated-access-token-0001", app_secret="", verify_token="",
                    display_phone_number=""),
        metadata=metadata)
    assert view.access_token.last4 == "0001" and view.app_secret.last4 == APP_SECRET[-4:]
    assert view.display_phone_number == ""
    service = stack.bearer(await stack.service_token())
    sending = await stack.tenant_stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=admin.tenant.id), metadata=service)
    assert sending.access_token == "EAAG-rotated-access-token-0001"
    resolved = await stack.tenant_stub.ResolvePhoneNumber(
        tenant_pb2.ResolvePhoneNumberRequest(phone_number_id=phone), metadata=service)
    assert resolved.app_secret == APP_SECRET
    check = await stack.tenant_stub.CheckVerifyToken(
        tenant_pb2.CheckVerifyTokenRequest(verify_token=VERIFY_TOKEN), metadata=service)
    assert check.valid


async def test_first_set_needs_every_secret(stack) -> None:
    admin = await stack.register()
    status, code = await stack.failure(stack.tenant_stub.PutWhatsAppCredentials(
        put_request(unique_phone(), app_secret=""), metadata=stack.bearer(admin.access_token)))
    assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_SECRET")
    status, code = await stack.failure(stack.tenant_stub.PutWhatsAppCredentials(
        put_request("+1-555"), metadata=stack.bearer(admin.access_token)))
    assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PHONE_NUMBER_ID")


async def test_attendant_is_denied(stack) -> None:
    admin = await stack.register()
    attendant = await stack.attendant(admin)
    assert attendant.user.role == "attendant"
    metadata = stack.bearer(attendant.access_token)
    assert await stack.failure(stack.tenant_stub.PutWhatsAppCredentials(put_request(unique_phone()),
                                                                        metadata=metadata)) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    status, _ = await stack.failure(stack.tenant_stub.GetWhatsAppCredentials(
        tenant_pb2.GetWhatsAppCredentialsRequest(), metadata=metadata))
    assert status == grpc.StatusCode.PERMISSION_DENIED
    # an attendant still reads its own tenant
    tenant = await stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(), metadata=metadata)
    assert tenant.id == admin.tenant.id


async def test_no_token_is_unauthenticated(stack) -> None:
    status, code = await stack.failure(stack.tenant_stub.PutWhatsAppCredentials(put_request(unique_phone())))
    assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


async def test_phone_number_of_another_tenant_is_taken(stack) -> None:
    first, second = await stack.register(), await stack.register()
    phone = unique_phone()
    await stack.tenant_stub.PutWhatsAppCredentials(put_request(phone), metadata=stack.bearer(first.access_token))
    status, code = await stack.failure(stack.tenant_stub.PutWhatsAppCredentials(
        put_request(phone), metadata=stack.bearer(second.access_token)))
    assert (status, code) == (grpc.StatusCode.ALREADY_EXISTS, "PHONE_NUMBER_TAKEN")
    # the owner may re-save its own number
    view = await stack.tenant_stub.PutWhatsAppCredentials(put_request(phone),
                                                          metadata=stack.bearer(first.access_token))
    assert view.phone_number_id == phone


async def test_service_lookups_work_with_a_service_token_only(stack) -> None:
    admin = await stack.register()
    phone = unique_phone()
    verify = f"verify-{phone}"
    await stack.tenant_stub.PutWhatsAppCredentials(put_request(phone, verify_token=verify),
                                                   metadata=stack.bearer(admin.access_token))
    service = stack.bearer(await stack.service_token())
    resolved = await stack.tenant_stub.ResolvePhoneNumber(
        tenant_pb2.ResolvePhoneNumberRequest(phone_number_id=phone), metadata=service)
    assert (resolved.found, resolved.tenant_id, resolved.tenant_status, resolved.app_secret) == (
        True, admin.tenant.id, "active", APP_SECRET)
    check = await stack.tenant_stub.CheckVerifyToken(tenant_pb2.CheckVerifyTokenRequest(verify_token=verify),
                                                     metadata=service)
    assert (check.valid, check.tenant_id) == (True, admin.tenant.id)
    wrong = await stack.tenant_stub.CheckVerifyToken(tenant_pb2.CheckVerifyTokenRequest(verify_token="nope-nope"),
                                                     metadata=service)
    assert not wrong.valid
    sending = await stack.tenant_stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=admin.tenant.id), metadata=service)
    assert (sending.phone_number_id, sending.access_token) == (phone, ACCESS_TOKEN)

    user = stack.bearer(admin.access_token)
    for call in (
        stack.tenant_stub.ResolvePhoneNumber(tenant_pb2.ResolvePhoneNumberRequest(phone_number_id=phone),
                                             metadata=user),
        stack.tenant_stub.CheckVerifyToken(tenant_pb2.CheckVerifyTokenRequest(verify_token=verify), metadata=user),
        stack.tenant_stub.GetSendingCredentials(tenant_pb2.GetSendingCredentialsRequest(tenant_id=admin.tenant.id),
                                                metadata=user),
    ):
        assert await stack.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")


async def test_sending_credentials_of_unconfigured_or_suspended_tenants(stack) -> None:
    admin = await stack.register()
    service = stack.bearer(await stack.service_token())
    request = tenant_pb2.GetSendingCredentialsRequest(tenant_id=admin.tenant.id)
    assert await stack.failure(stack.tenant_stub.GetSendingCredentials(request, metadata=service)) == (
        grpc.StatusCode.NOT_FOUND, "WHATSAPP_NOT_CONFIGURED")
    await stack.tenant_stub.PutWhatsAppCredentials(put_request(unique_phone()),
                                                   metadata=stack.bearer(admin.access_token))
    await stack.sql(stack.tenant_db, "UPDATE tenants SET status = 'suspended' WHERE id = $1", admin.tenant.id,
                    tenant=admin.tenant.id)
    assert await stack.failure(stack.tenant_stub.GetSendingCredentials(request, metadata=service)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED")
