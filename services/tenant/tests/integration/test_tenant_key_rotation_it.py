"""Sealing keys rotate without a migration: rows sealed with the old key still open, the next write reseals the
whole row with the new key; a ciphertext moved to another tenant's row does not open."""

import os
import random

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_common.auth import Principal
from eva_common.db import create_engine, session_factory
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.domain import CredentialsInput
from tenant_service.service import TenantService

pytestmark = pytest.mark.integration


def _admin(session) -> Principal:
    return Principal(subject=session.user.id, kind="user", role="admin", tenant_id=session.tenant.id, token="-",
                     token_id="-", issued_at=0, expires_at=0)


SERVICE = Principal(subject="service:test", kind="service", role="service", tenant_id=None, token="-",
                    token_id="-", issued_at=0, expires_at=0)


async def test_rotating_the_active_key(stack) -> None:
    admin = await stack.register()
    phone = str(random.randrange(10**14, 10**15))
    await stack.tenant_stub.PutWhatsAppCredentials(
        tenant_pb2.PutWhatsAppCredentialsRequest(phone_number_id=phone, waba_id="77", access_token="EAAG-old-token-1",
                                                 app_secret="old-app-secret-1", verify_token="old-verify-1"),
        metadata=stack.bearer(admin.access_token))
    settings = stack.tenant.settings
    keys = {**settings.encryption_key_bytes(), "k2": os.urandom(32)}
    engine = create_engine(stack.tenant_db.app_url, pool_size=2)
    try:
        rotated = TenantService(sessions=session_factory(engine), secrets=SecretBox(keys=keys, active_key_id="k2"),
                                lookup=LookupHasher(key=settings.lookup_key_bytes()), events_topic=stack.events_topic)
        sending = await rotated.get_sending_credentials(principal=SERVICE, tenant_id=admin.tenant.id)
        assert sending.access_token == "EAAG-old-token-1"  # sealed with k1, opened by the rotated ring

        await rotated.put_whatsapp_credentials(
            principal=_admin(admin), data=CredentialsInput(phone_number_id=phone, waba_id="77"))
        (row,) = await stack.sql(stack.tenant_db, "SELECT * FROM whatsapp_credentials WHERE tenant_id = $1",
                                 admin.tenant.id)
        assert row["key_id"] == "k2"
        assert all(row[f"{field}_ciphertext"].startswith("k2:")
                   for field in ("access_token", "app_secret", "verify_token"))
        resolved = await rotated.resolve_phone_number(principal=SERVICE, phone_number_id=phone)
        assert resolved.app_secret == "old-app-secret-1"
        assert (await rotated.check_verify_token(principal=SERVICE, verify_token="old-verify-1")).valid
    finally:
        await engine.dispose()
    # the running service (k1 only) cannot open k2 rows: a server error with a stable code, naming no secret
    service = stack.bearer(await stack.service_token())
    status, code = await stack.failure(stack.tenant_stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=admin.tenant.id), metadata=service))
    assert (status, code) == (grpc.StatusCode.UNKNOWN, "SECRET_UNREADABLE")


async def test_ciphertext_moved_to_another_tenant_does_not_open(stack) -> None:
    victim, thief = await stack.register(), await stack.register()
    for session in (victim, thief):
        await stack.tenant_stub.PutWhatsAppCredentials(
            tenant_pb2.PutWhatsAppCredentialsRequest(
                phone_number_id=str(random.randrange(10**14, 10**15)), waba_id="77",
                access_token=f"EAAG-{session.tenant.id}", app_secret="app-secret-xyz", verify_token="verify-xyz-1"),
            metadata=stack.bearer(session.access_token))
    await stack.sql(
        stack.tenant_db,
        "UPDATE whatsapp_credentials SET access_token_ciphertext = "
        "(SELECT access_token_ciphertext FROM whatsapp_credentials WHERE tenant_id = $1) WHERE tenant_id = $2",
        victim.tenant.id, thief.tenant.id, tenant=thief.tenant.id)
    service = stack.bearer(await stack.service_token())
    assert await stack.failure(stack.tenant_stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=thief.tenant.id), metadata=service)) == (
        grpc.StatusCode.UNKNOWN, "SECRET_UNREADABLE")
    sending = await stack.tenant_stub.GetSendingCredentials(
        tenant_pb2.GetSendingCredentialsRequest(tenant_id=victim.tenant.id), metadata=service)
    assert sending.access_token == f"EAAG-{victim.tenant.id}"
