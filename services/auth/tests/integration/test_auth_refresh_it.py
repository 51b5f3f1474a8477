"""Refresh-token rotation, reuse detection and logout against the real database."""

import asyncio

import grpc
import pytest
from eva.auth.v1 import auth_pb2

pytestmark = pytest.mark.integration


def refresh(stack, token: str):
    return stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token), timeout=10)


async def test_refresh_rotates_within_the_family(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    assert rotated.refresh_token != session.refresh_token
    assert rotated.access_token != session.access_token
    assert rotated.user.id == session.user.id and rotated.tenant.id == session.tenant.id
    again = await refresh(stack, rotated.refresh_token)
    rows = await stack.sql(
        stack.auth_db,
        "SELECT count(DISTINCT family_id) AS families, count(*) AS tokens, count(used_at) AS used "
        "FROM refresh_tokens WHERE user_id = $1", session.user.id, tenant=session.tenant.id)
    assert dict(rows[0]) == {"families": 1, "tokens": 3, "used": 2}
    assert again.refresh_token not in {session.refresh_token, rotated.refresh_token}


async def test_reusing_a_spent_token_revokes_the_family(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    # the thief's replay also killed the legitimate holder's newer token
    assert await stack.failure(refresh(stack, rotated.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    rows = await stack.sql(
        stack.auth_db, "SELECT count(*) AS live FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
        session.user.id, tenant=session.tenant.id)
    assert rows[0]["live"] == 0


async def test_reuse_revokes_only_that_family(stack) -> None:
    email = stack.email()
    session = await stack.register(email=email)
    other_device = await stack.login(email)
    await refresh(stack, session.refresh_token)
    await stack.failure(refresh(stack, session.refresh_token))
    assert (await refresh(stack, other_device.refresh_token)).user.id == session.user.id


async def test_concurrent_refresh_of_one_token_lets_exactly_one_through(stack) -> None:
    session = await stack.register()
    results = await asyncio.gather(*(refresh(stack, session.refresh_token) for _ in range(5)),
                                   return_exceptions=True)
    successes = [result for result in results if isinstance(result, auth_pb2.AuthSession)]
    failures = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
    assert len(successes) == 1 and len(failures) == 4
    assert all(failure.code() == grpc.StatusCode.UNAUTHENTICATED for failure in failures)


async def test_unknown_and_empty_refresh_tokens_are_refused(stack) -> None:
    for token in ("", "not-a-token"):
        assert await stack.failure(refresh(stack, token)) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")


async def test_expired_refresh_token_is_refused(stack) -> None:
    session = await stack.register()
    await stack.sql(stack.auth_db, "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' "
                                   "WHERE user_id = $1", session.user.id, tenant=session.tenant.id)
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_EXPIRED")


async def test_logout_revokes_the_family(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=rotated.refresh_token))
    assert await stack.failure(refresh(stack, rotated.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    # logging out twice, or with an unknown token, is harmless
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=rotated.refresh_token))
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token="unknown"))
