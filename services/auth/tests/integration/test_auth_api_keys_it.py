"""ExchangeApiKey against the real tenant service: an admin creates a key there; auth verifies it (its digest, on
the tenant side, with auth's own service token) and signs a short-lived api_key token with its tenant and scopes."""

import time

import grpc
import jwt
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2
from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.grpc.client import create_channel
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


async def create_key(stack, admin, scopes=("messages:read", "usage:read")) -> tenant_pb2.CreatedApiKey:
    created: tenant_pb2.CreatedApiKey = await stack.tenant_stub.CreateApiKey(
        tenant_pb2.CreateApiKeyRequest(name="n8n", scopes=list(scopes)), metadata=stack.bearer(admin.access_token))
    return created


def exchange(stack, key: str):
    return stack.auth_stub.ExchangeApiKey(auth_pb2.ExchangeApiKeyRequest(api_key=key), timeout=10)


async def test_a_valid_key_is_exchanged_for_a_scoped_token(stack) -> None:
    admin = await stack.register(tenant_name="Key Hotel")
    created = await create_key(stack, admin)
    before_ms = int(time.time() * 1000)
    response = await exchange(stack, created.key)
    assert response.tenant_id == admin.tenant.id and response.key_id == created.api_key.id
    assert list(response.scopes) == ["messages:read", "usage:read"] and response.expires_in == 300
    claims = jwt.decode(response.access_token, options={"verify_signature": False})
    assert claims["typ"] == "api_key" and claims["role"] == "api_key"
    assert claims["sub"] == f"apikey:{created.api_key.id}" and claims["tid"] == admin.tenant.id
    assert claims["scopes"] == ["messages:read", "usage:read"] and claims["exp"] - claims["iat"] == 300
    assert claims["iat_ms"] >= before_ms - 1000 and "email" not in claims
    # any service verifies it against auth's JWKS, as an API-key principal of that tenant
    channel = create_channel(f"127.0.0.1:{stack.auth.grpc_server.port}")
    redis = Redis.from_url(stack.infra.redis_url, decode_responses=True)
    try:
        verifier = TokenVerifier(jwks_source=grpc_jwks_source(lambda: channel), issuer="eva-auth", audience="eva",
                                 revocations=RedisRevocations(redis))
        principal = await verifier.verify(response.access_token)
    finally:
        await channel.close()
        await redis.aclose()
    assert principal.is_api_key and principal.tenant_id == admin.tenant.id
    assert principal.scopes == ("messages:read", "usage:read")


async def test_revoked_expired_and_made_up_keys_are_invalid(stack) -> None:
    admin = await stack.register(tenant_name="Dead Keys Hotel")
    revoked = await create_key(stack, admin)
    await stack.tenant_stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=revoked.api_key.id),
                                         metadata=stack.bearer(admin.access_token))
    expired = await create_key(stack, admin)
    await stack.sql(stack.tenant_db, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
                    expired.api_key.id, tenant=admin.tenant.id)
    live = await create_key(stack, admin)
    made_up = live.key[:-6] + ("AAAAAA" if not live.key.endswith("AAAAAA") else "BBBBBB")
    for key in (revoked.key, expired.key, made_up, "eva_nope", "", "Bearer something"):
        assert await stack.failure(exchange(stack, key)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"), key
    assert (await exchange(stack, live.key)).key_id == live.api_key.id


async def test_a_suspended_tenants_key_is_refused(stack) -> None:
    admin = await stack.register(tenant_name="Suspended Keys Hotel")
    created = await create_key(stack, admin)
    await stack.set_tenant_status(admin.tenant.id, "suspended")
    try:
        refused = await stack.failure(exchange(stack, created.key))
    finally:
        await stack.set_tenant_status(admin.tenant.id, "active")
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_SUSPENDED")
    assert (await exchange(stack, created.key)).tenant_id == admin.tenant.id


async def test_an_api_key_token_cannot_manage_users_or_be_a_user(stack) -> None:
    admin = await stack.register(tenant_name="Key Limits Hotel")
    token = (await exchange(stack, (await create_key(stack, admin)).key)).access_token
    for call in (stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(), metadata=stack.bearer(token)),
                 stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=admin.user.id), metadata=stack.bearer(token)),
                 stack.create_user(token)):
        assert await stack.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, "API_KEY_NOT_ALLOWED")
    assert await stack.failure(stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(token))) == (
        grpc.StatusCode.PERMISSION_DENIED, "USER_ONLY")
