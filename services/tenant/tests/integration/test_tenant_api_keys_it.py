"""API keys over real gRPC: the key is shown once and stored as an HMAC digest; verification finds it by digest,
refuses revoked and expired keys, and records the last use at most once a minute; revocation is idempotent and
also refuses the tokens already exchanged for the key; another tenant's keys do not exist for an admin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_common.timefmt import rfc3339

pytestmark = pytest.mark.integration

KEY_SHAPE = re.compile(r"^eva_([a-z0-9]{8})_[A-Za-z0-9_-]{43}$")


async def create_key(harness, tenant_id: str, *, scopes=("messages:send",), name="n8n", expires_at: str = ""):
    return await harness.stub.CreateApiKey(
        tenant_pb2.CreateApiKeyRequest(name=name, scopes=list(scopes), expires_at=expires_at),
        metadata=harness.user(tenant_id, "admin", user_id="admin-1"))


async def verify(harness, key: str) -> tenant_pb2.VerifiedApiKey:
    return await harness.stub.VerifyApiKey(tenant_pb2.VerifyApiKeyRequest(api_key=key), metadata=harness.service())


async def test_key_lifecycle(harness) -> None:
    tenant = await harness.new_tenant("Keyed Hotel")
    admin = harness.user(tenant.id, "admin", user_id="admin-1")
    created = await create_key(harness, tenant.id, scopes=("usage:read", "messages:send", "usage:read"))
    shape = KEY_SHAPE.match(created.key)
    assert shape is not None and created.api_key.prefix == shape.group(1)
    key = created.api_key
    assert (key.tenant_id, key.name, key.created_by, list(key.scopes)) == (
        tenant.id, "n8n", "admin-1", ["messages:send", "usage:read"])
    assert key.created_at and not key.last_used_at and not key.revoked_at and not key.expires_at

    (row,) = await harness.sql("SELECT * FROM api_keys WHERE id = $1", key.id)
    lookup_key = base64.b64decode(harness.settings.lookup_hmac_key.get_secret_value())
    assert row["digest"] == hmac.new(lookup_key, created.key.encode(), hashlib.sha256).hexdigest()
    assert created.key not in " ".join(str(value) for value in row.values())

    listed = await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(), metadata=admin)
    assert [item.id for item in listed.items] == [key.id]
    assert created.key.encode() not in listed.SerializeToString()  # shown once: never listed

    verified = await verify(harness, created.key)
    assert (verified.valid, verified.key_id, verified.tenant_id, list(verified.scopes), verified.tenant_status) == (
        True, key.id, tenant.id, ["messages:send", "usage:read"], "active")

    revoked = await harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=admin)
    assert revoked.revoked_at
    assert not (await verify(harness, created.key)).valid
    again = await harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=key.id), metadata=admin)
    assert again.revoked_at == revoked.revoked_at  # idempotent
    assert (await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(), metadata=admin)).items == []
    with_revoked = await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(include_revoked=True),
                                                  metadata=admin)
    assert [(item.id, item.revoked_at) for item in with_revoked.items] == [(key.id, revoked.revoked_at)]


async def test_revocation_refuses_tokens_already_exchanged_for_the_key(harness) -> None:
    tenant = await harness.new_tenant()
    created = await create_key(harness, tenant.id, scopes=("usage:read",))
    token = harness.api_key(tenant.id, ["usage:read"], key_id=created.api_key.id)  # as auth's exchange would mint
    usage = await harness.stub.GetUsage(tenant_pb2.GetUsageRequest(), metadata=token)
    assert usage.limits.tenant_id == tenant.id
    await harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.id),
                                    metadata=harness.user(tenant.id, "admin"))
    stored = await harness.redis.get(f"auth:revoked-before:apikey:{created.api_key.id}")
    revoked_at = datetime.fromisoformat(
        (await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(include_revoked=True),
                                        metadata=harness.user(tenant.id, "admin"))).items[0].revoked_at)
    assert int(stored) == int(revoked_at.timestamp() * 1000)
    assert await harness.failure(harness.stub.GetUsage(tenant_pb2.GetUsageRequest(), metadata=token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_last_use_is_recorded_at_most_once_a_minute(harness) -> None:
    tenant = await harness.new_tenant()
    created = await create_key(harness, tenant.id)
    key_id = created.api_key.id

    async def last_used() -> datetime | None:
        (row,) = await harness.sql("SELECT last_used_at FROM api_keys WHERE id = $1", key_id)
        return row["last_used_at"]

    assert await last_used() is None
    await verify(harness, created.key)
    first = await last_used()
    assert first is not None
    await verify(harness, created.key)
    assert await last_used() == first  # within the minute: not written again
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    await harness.sql("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", earlier, key_id, tenant=tenant.id)
    await verify(harness, created.key)
    latest = await last_used()
    assert latest is not None and latest > earlier + timedelta(minutes=1)


async def test_expired_keys_are_refused(harness) -> None:
    tenant = await harness.new_tenant()
    soon = rfc3339(datetime.now(UTC) + timedelta(hours=1))
    created = await create_key(harness, tenant.id, expires_at=soon)
    assert created.api_key.expires_at == soon
    assert (await verify(harness, created.key)).valid
    await harness.sql("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
                      created.api_key.id, tenant=tenant.id)
    assert not (await verify(harness, created.key)).valid


async def test_unknown_and_malformed_keys_are_not_valid(harness) -> None:
    tenant = await harness.new_tenant()
    created = await create_key(harness, tenant.id)
    tampered = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
    for key in (tampered, "", "eva_short", "Bearer x", created.key.upper(), "x" * 5000):
        answer = await verify(harness, key)
        assert (answer.valid, answer.key_id, answer.tenant_id) == (False, "", "")


async def test_create_validates(harness) -> None:
    tenant = await harness.new_tenant()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for request, code in (
        (tenant_pb2.CreateApiKeyRequest(name="", scopes=["usage:read"]), "INVALID_API_KEY_NAME"),
        (tenant_pb2.CreateApiKeyRequest(name="x" * 101, scopes=["usage:read"]), "INVALID_API_KEY_NAME"),
        (tenant_pb2.CreateApiKeyRequest(name="k", scopes=[]), "SCOPES_REQUIRED"),
        (tenant_pb2.CreateApiKeyRequest(name="k", scopes=["usage:read", "users:write"]), "INVALID_SCOPE"),
        (tenant_pb2.CreateApiKeyRequest(name="k", scopes=["usage:read"], expires_at=past), "INVALID_EXPIRES_AT"),
        (tenant_pb2.CreateApiKeyRequest(name="k", scopes=["usage:read"], expires_at="tomorrow"), "INVALID_TIME"),
    ):
        assert await harness.failure(harness.stub.CreateApiKey(request, metadata=harness.user(tenant.id))) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)
    listed = await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(include_revoked=True),
                                            metadata=harness.user(tenant.id))
    assert list(listed.items) == []
    longest = await harness.stub.CreateApiKey(
        tenant_pb2.CreateApiKeyRequest(name="y" * 100, scopes=["usage:read"]), metadata=harness.user(tenant.id))
    assert longest.api_key.name == "y" * 100


async def test_another_tenants_keys_do_not_exist_for_an_admin(harness) -> None:
    tenant_a, tenant_b = await harness.new_tenant("A Hotel"), await harness.new_tenant("B Hotel")
    key_b = await create_key(harness, tenant_b.id)
    admin_a = harness.user(tenant_a.id, "admin")
    assert await harness.failure(harness.stub.RevokeApiKey(
        tenant_pb2.RevokeApiKeyRequest(api_key_id=key_b.api_key.id), metadata=admin_a)) == (
        grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")
    listed = await harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(include_revoked=True), metadata=admin_a)
    assert key_b.api_key.id not in {item.id for item in listed.items}
    still = await verify(harness, key_b.key)
    assert (still.valid, still.tenant_id) == (True, tenant_b.id)  # B's key untouched


@pytest.mark.parametrize("who", ["attendant", "service", "api_key"])
async def test_only_admins_manage_keys(harness, who: str) -> None:
    tenant = await harness.new_tenant()
    key = await create_key(harness, tenant.id)
    caller = {"attendant": harness.user(tenant.id, "attendant"), "service": harness.service(),
              "api_key": harness.api_key(tenant.id, ["usage:read", "messages:send"])}[who]
    expected = {"attendant": "FORBIDDEN_ROLE", "service": "USER_ONLY", "api_key": "API_KEY_NOT_ALLOWED"}[who]
    for call in (
        harness.stub.CreateApiKey(tenant_pb2.CreateApiKeyRequest(name="k", scopes=["usage:read"]), metadata=caller),
        harness.stub.ListApiKeys(tenant_pb2.ListApiKeysRequest(), metadata=caller),
        harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=key.api_key.id), metadata=caller),
    ):
        assert await harness.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, expected)
    assert (await verify(harness, key.key)).valid  # not revoked by any of them


async def test_verification_is_for_services_only(harness) -> None:
    tenant = await harness.new_tenant()
    key = await create_key(harness, tenant.id)
    for caller in (harness.user(tenant.id, "admin"), harness.super_admin(),
                   harness.api_key(tenant.id, ["messages:send"])):
        assert await harness.failure(harness.stub.VerifyApiKey(tenant_pb2.VerifyApiKeyRequest(api_key=key.key),
                                                               metadata=caller)) == (
            grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")
