"""Revocation at the edge: once auth records a user's revocation time in Redis, tokens issued before it are refused
by the REST API and by the sockets (handshake, `authenticate`, and the periodic sweep of connected sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import socketio
from eva_common.auth import RedisRevocations
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def revoke(redis: Redis, user_id: str) -> None:
    """What auth does on deactivation, deletion or a password change (one millisecond after the token's iat)."""
    await RedisRevocations(redis).revoke(user_id, at_ms=int(time.time() * 1000) + 1)


async def test_a_revoked_users_token_is_refused_by_the_rest_api(
    http: httpx.AsyncClient, make_account: Callable[..., Any], issuer: Any, redis: Redis, upstreams: Any
) -> None:
    account = make_account()
    assert (await http.get("/api/tenant", headers=bearer(account.token))).status_code == 200
    await revoke(redis, account.user_id)
    reached = len(upstreams.directory.forwarded_metadata)
    for path in ("/api/tenant", "/auth/me", "/api/usage"):
        refused = await http.get(path, headers=bearer(account.token))
        assert refused.status_code == 401
        assert refused.json()["code"] == "TOKEN_REVOKED" and refused.headers["www-authenticate"] == "Bearer"
    assert len(upstreams.directory.forwarded_metadata) == reached

    await asyncio.sleep(0.002)  # a token issued after the revocation (a new login) is fine
    fresh = issuer.user_token(user_id=account.user_id, tenant_id=account.tenant_id)
    assert (await http.get("/api/tenant", headers=bearer(fresh))).status_code == 200


async def test_a_revoked_token_cannot_open_or_authenticate_a_socket(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], redis: Redis
) -> None:
    account = make_account()
    await revoke(redis, account.user_id)
    refused = sockets()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(gateway.url, token=account.token)
    assert refused.connect_errors[0]["message"] == "TOKEN_REVOKED"
    assert refused.connect_errors[0]["data"]["code"] == "TOKEN_REVOKED"

    anonymous = sockets()
    await anonymous.connect(gateway.url)
    assert await anonymous.call("authenticate", {"token": account.token}) == {"ok": False, "code": "TOKEN_REVOKED"}


async def test_the_sweep_signs_out_sockets_whose_user_was_revoked(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], redis: Redis, upstreams: Any,
    seed_conversation: Callable[..., None]
) -> None:
    account = make_account()
    bystander = make_account(tenant_id=account.tenant_id)
    seed_conversation(account, "conv-revoked-socket")
    revoked, unaffected = sockets(), sockets()
    await revoked.connect(gateway.url, token=account.token)
    await unaffected.connect(gateway.url, token=bystander.token)
    assert await revoked.call("join:conversation", {"conversationId": "conv-revoked-socket"}) == {"ok": True}

    await revoke(redis, account.user_id)
    assert await revoked.next_event("auth:expired") == {"code": "TOKEN_REVOKED"}  # the sweep runs every 0.2 s here
    assert await revoked.call("typing:start", {"conversationId": "conv-revoked-socket"}) == {
        "ok": False, "code": "UNAUTHENTICATED"}
    assert await revoked.call("authenticate", {"token": account.token}) == {"ok": False, "code": "TOKEN_REVOKED"}
    assert await unaffected.call("join:conversation", {"conversationId": "conv-revoked-socket"}) == {"ok": True}
    assert "auth:expired" not in unaffected.names()
