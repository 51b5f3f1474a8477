"""Refresh-token rotation, the reuse grace, reuse detection and logout against the real database."""

import asyncio
from contextlib import asynccontextmanager

import grpc
import pytest
from auth_service.main import AuthApp
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva_common.grpc.client import create_channel

pytestmark = pytest.mark.integration


def refresh(stack, token: str, stub=None):
    return (stub or stack.auth_stub).Refresh(auth_pb2.RefreshRequest(refresh_token=token), timeout=10)


async def family_state(stack, session) -> dict:
    rows = await stack.sql(
        stack.auth_db,
        "SELECT count(DISTINCT family_id) AS families, count(*) AS tokens, count(used_at) AS used, "
        "count(revoked_at) AS revoked, count(successor_sealed) AS sealed FROM refresh_tokens WHERE user_id = $1",
        session.user.id, tenant=session.tenant.id)
    return dict(rows[0])


async def test_refresh_rotates_within_the_family(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    assert rotated.refresh_token != session.refresh_token
    assert rotated.access_token != session.access_token
    assert rotated.user.id == session.user.id and rotated.tenant.id == session.tenant.id
    again = await refresh(stack, rotated.refresh_token)
    assert await family_state(stack, session) == {"families": 1, "tokens": 3, "used": 2, "revoked": 0, "sealed": 2}
    assert again.refresh_token not in {session.refresh_token, rotated.refresh_token}


async def test_a_spent_token_within_the_grace_gets_the_same_successor(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    again = await refresh(stack, session.refresh_token)  # the second tab, a moment later
    assert (again.refresh_token, again.access_token) == (rotated.refresh_token, rotated.access_token)
    assert again.user.id == session.user.id and again.tenant.id == session.tenant.id
    assert 0 < again.expires_in <= rotated.expires_in
    # nothing was revoked and no new token was made: the family is alive and its successor works
    assert await family_state(stack, session) == {"families": 1, "tokens": 2, "used": 1, "revoked": 0, "sealed": 1}
    me = await stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(again.access_token), timeout=10)
    assert me.user.id == session.user.id
    newest = await refresh(stack, again.refresh_token)
    assert newest.refresh_token not in {session.refresh_token, rotated.refresh_token}


async def test_a_replay_after_the_successor_was_spent_is_reuse(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    newest = await refresh(stack, rotated.refresh_token)
    # within the grace, but the family has moved on without this caller
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert await stack.failure(refresh(stack, newest.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")


async def test_reusing_a_spent_token_after_the_grace_revokes_the_family(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    await stack.end_reuse_grace(session)
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    # the thief's replay also killed the legitimate holder's newer token
    assert await stack.failure(refresh(stack, rotated.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    # every token is revoked and no sealed successor is left behind
    assert await family_state(stack, session) == {"families": 1, "tokens": 2, "used": 1, "revoked": 2, "sealed": 0}


async def test_reuse_revokes_only_that_family(stack) -> None:
    email = stack.email()
    session = await stack.register(email=email)
    other_device = await stack.login(email)
    await refresh(stack, session.refresh_token)
    await stack.end_reuse_grace(session)
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert (await refresh(stack, other_device.refresh_token)).user.id == session.user.id


async def test_concurrent_refreshes_of_one_token_all_get_the_same_successor(stack) -> None:
    session = await stack.register()
    results = await asyncio.gather(*(refresh(stack, session.refresh_token) for _ in range(5)))
    assert len({(result.refresh_token, result.access_token) for result in results}) == 1
    assert results[0].refresh_token != session.refresh_token
    # exactly one rotation happened, and its successor is live
    assert await family_state(stack, session) == {"families": 1, "tokens": 2, "used": 1, "revoked": 0, "sealed": 1}
    assert (await refresh(stack, results[0].refresh_token)).user.id == session.user.id


async def test_older_sealed_successors_are_dropped_once_their_grace_is_over(stack) -> None:
    session = await stack.register()
    rotated = await refresh(stack, session.refresh_token)
    await stack.end_reuse_grace(session)
    await refresh(stack, rotated.refresh_token)
    # only the latest rotation, still within its grace, keeps its successor
    assert await family_state(stack, session) == {"families": 1, "tokens": 3, "used": 2, "revoked": 0, "sealed": 1}


@asynccontextmanager
async def auth_with(stack, **overrides):
    """A second auth runtime on the same databases, with other settings; yields its stub."""
    runtime = AuthApp(stack.auth_settings.model_copy(update=overrides))
    await runtime.start()
    channel = create_channel(f"127.0.0.1:{runtime.grpc_server.port}")
    try:
        yield auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        await channel.close()
        await runtime.stop()


async def test_without_a_grace_any_replay_revokes_the_family(stack) -> None:
    session = await stack.register()
    async with auth_with(stack, refresh_reuse_grace_seconds=0) as strict:
        rotated = await refresh(stack, session.refresh_token, strict)
        assert await stack.failure(refresh(stack, session.refresh_token, strict)) == (
            grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert await stack.failure(refresh(stack, rotated.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    assert await family_state(stack, session) == {"families": 1, "tokens": 2, "used": 1, "revoked": 2, "sealed": 0}


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
    # nor does the spent token get the revoked successor back within the grace
    assert await stack.failure(refresh(stack, session.refresh_token)) == (
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    # logging out twice, or with an unknown token, is harmless
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=rotated.refresh_token))
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token="unknown"))
