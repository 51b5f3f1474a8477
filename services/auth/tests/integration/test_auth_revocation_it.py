"""Deactivation, deletion and password change end a user's sessions: their refresh-token families are revoked
and their access tokens are refused (TOKEN_REVOKED) by auth and by the tenant service alike, through the
revocation time auth writes to Redis."""

import asyncio

import grpc
import jwt
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2
from redis.asyncio import Redis

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def get_me(stack, token: str):
    return stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(token))


def refresh(stack, token: str):
    return stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token), timeout=10)


async def assert_tokens_dead(stack, session) -> None:
    assert await stack.failure(get_me(stack, session.access_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    # "everywhere": the tenant service refuses the same token, from the same revocation time in Redis
    elsewhere = await stack.failure(stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(),
                                                                metadata=stack.bearer(session.access_token)))
    assert elsewhere == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")


async def update(stack, admin, user_id: str, **changes) -> auth_pb2.User:
    user: auth_pb2.User = await stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=user_id, **changes), metadata=stack.bearer(admin.access_token))
    return user


async def test_password_change_ends_every_session_and_the_new_password_works(stack) -> None:
    admin = await stack.register(tenant_name="Password Hotel")
    user = await stack.user_session(admin)
    other_device = await stack.login(user.user.email, tenant_slug=admin.tenant.slug)
    assert (await get_me(stack, user.access_token)).user.id == user.user.id
    await update(stack, admin, user.user.id, password=NEW_PASSWORD)
    await assert_tokens_dead(stack, user)
    await assert_tokens_dead(stack, other_device)
    old = await stack.failure(stack.login(user.user.email, PASSWORD, tenant_slug=admin.tenant.slug))
    assert old == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    fresh = await stack.login(user.user.email, NEW_PASSWORD, tenant_slug=admin.tenant.slug)
    assert (await get_me(stack, fresh.access_token)).user.id == user.user.id
    assert (await refresh(stack, fresh.refresh_token)).user.id == user.user.id
    # the admin's own session is untouched
    assert (await get_me(stack, admin.access_token)).user.id == admin.user.id


async def test_deactivation_ends_sessions_until_reactivation(stack) -> None:
    admin = await stack.register(tenant_name="Deactivation Hotel")
    user = await stack.user_session(admin)
    await update(stack, admin, user.user.id, active=False)
    await assert_tokens_dead(stack, user)
    refused = await stack.failure(stack.login(user.user.email, tenant_slug=admin.tenant.slug))
    assert refused == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    await update(stack, admin, user.user.id, active=True)
    back = await stack.login(user.user.email, tenant_slug=admin.tenant.slug)
    assert (await get_me(stack, back.access_token)).user.active


async def test_deletion_ends_sessions_for_good(stack) -> None:
    admin = await stack.register(tenant_name="Deletion Hotel")
    user = await stack.user_session(admin)
    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=user.user.id),
                                     metadata=stack.bearer(admin.access_token))
    await assert_tokens_dead(stack, user)
    refused = await stack.failure(stack.login(user.user.email, tenant_slug=admin.tenant.slug))
    assert refused == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    # a token of the deleted user, signed after the deletion (a key holder's forgery or a clock trick), is still
    # useless: the account itself is gone
    forged_later = jwt.encode(
        {**jwt.decode(user.access_token, options={"verify_signature": False}),
         "iat_ms": 10**13, "jti": "later"}, stack.current_key, algorithm="EdDSA", headers={"kid": "current"})
    assert await stack.failure(get_me(stack, forged_later)) == (grpc.StatusCode.UNAUTHENTICATED, "USER_INACTIVE")


async def test_role_change_refuses_old_tokens_but_keeps_the_session(stack) -> None:
    admin = await stack.register(tenant_name="Promotion Hotel")
    user = await stack.user_session(admin)
    await update(stack, admin, user.user.id, role="admin")
    assert await stack.failure(get_me(stack, user.access_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    renewed = await refresh(stack, user.refresh_token)
    assert jwt.decode(renewed.access_token, options={"verify_signature": False})["role"] == "admin"
    assert (await get_me(stack, renewed.access_token)).user.role == "admin"


async def test_revocation_time_is_kept_in_redis_in_milliseconds(stack) -> None:
    admin = await stack.register(tenant_name="Redis Hotel")
    user = await stack.user_session(admin)
    issued_ms = jwt.decode(user.access_token, options={"verify_signature": False})["iat_ms"]
    await update(stack, admin, user.user.id, active=False)
    redis = Redis.from_url(stack.infra.redis_url, decode_responses=True)
    try:
        value = await redis.get(f"auth:revoked-before:{user.user.id}")
    finally:
        await redis.aclose()
    assert value is not None and int(value) > issued_ms


async def test_login_racing_a_deactivation_never_keeps_a_working_token(stack) -> None:
    admin = await stack.register(tenant_name="Race Deactivation Hotel")
    user = await stack.create_user(admin.access_token)
    login = asyncio.create_task(stack.login(user.email, tenant_slug=admin.tenant.slug))
    await asyncio.sleep(0.02)
    await update(stack, admin, user.id, active=False)
    try:
        session = await login
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # the deactivation came first
    else:
        assert await stack.failure(get_me(stack, session.access_token)) == (
            grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
        assert await stack.failure(refresh(stack, session.refresh_token)) == (
            grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
