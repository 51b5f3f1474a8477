"""Socket.io through the real gateway: rooms fed by Redis (as the realtime service emits), authentication,
conversation rooms checked upstream, typing relay, malformed payloads and token expiry."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import socketio
from eva.conversation.v1 import conversation_pb2
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


@pytest.fixture
async def emitter(gateway: Any, redis: Redis) -> AsyncIterator[socketio.AsyncRedisManager]:
    """A write-only Redis manager on the gateway's channel: exactly how the realtime service emits."""
    manager = socketio.AsyncRedisManager(gateway.settings.redis_url, channel=gateway.settings.socketio_channel,
                                         write_only=True)
    try:
        yield manager
    finally:
        if manager.redis is not None:
            await manager.redis.aclose()


def _conversation(upstreams: Any, account: Any, conversation_id: str) -> None:
    upstreams.directory.conversations[conversation_id] = conversation_pb2.Conversation(
        id=conversation_id, tenant_id=account.tenant_id, contact_id="k1", status="open")


async def test_handshake_token_joins_the_tenant_room(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], emitter: Any,
    realtime: Callable[..., Any], wait_subscribed: Callable[..., Any]
) -> None:
    mine, theirs = make_account(), make_account()
    alice, bob = sockets(), sockets()
    await alice.connect(gateway.url, token=mine.token)
    await bob.connect(gateway.url, token=theirs.token)
    await wait_subscribed(gateway.settings.socketio_channel)

    message = await realtime().emit(mine.tenant_id, "message:new",
                                    {"id": "m1", "conversationId": "c1", "status": "RECEIVED"})
    assert message["seq"] == 1
    await emitter.emit("marker", {"n": 1}, room=f"tenant:{theirs.tenant_id}", namespace="/")
    await emitter.emit("to-user", {"n": 2}, room=f"user:{mine.user_id}", namespace="/")

    assert await alice.next_event("message:new") == message
    assert await alice.next_event("to-user") == {"n": 2}
    assert await bob.next_event("marker") == {"n": 1}
    # Redis delivers the channel in order, so had bob been in alice's tenant room he would have had it first.
    assert bob.names() == ["marker"]
    assert "marker" not in alice.names()


async def test_authenticate_event_flow(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], upstreams: Any, issuer: Any
) -> None:
    account = make_account(role="attendant")
    _conversation(upstreams, account, "conv-auth-flow")
    probe = sockets()
    await probe.connect(gateway.url)  # no token: accepted, but in no room until it authenticates

    assert await probe.call("join:conversation", {"conversationId": "conv-auth-flow"}) == {
        "ok": False, "code": "UNAUTHENTICATED"}
    assert await probe.call("resume", {"lastSeq": 1}) == {"ok": False, "code": "UNAUTHENTICATED"}
    assert await probe.call("authenticate", {"token": "not-a-jwt"}) == {"ok": False, "code": "TOKEN_INVALID"}
    assert await probe.call("authenticate", {"token": issuer.service_token()}) == {
        "ok": False, "code": "TOKEN_INVALID"}
    assert await probe.call("authenticate", "just a string") == {"ok": False, "code": "VALIDATION_FAILED"}

    ack = await probe.call("authenticate", {"token": account.token})
    assert ack == {"ok": True, "user": {"id": account.user_id, "tenantId": account.tenant_id, "role": "attendant"}}
    assert await probe.call("join:conversation", {"conversationId": "conv-auth-flow"}) == {"ok": True}
    assert await probe.call("no-such-event", {}) == {"ok": False, "code": "UNKNOWN_EVENT"}


async def test_unauthenticated_sockets_are_disconnected_after_the_timeout(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any]
) -> None:
    account = make_account()
    patient, silent = sockets(), sockets()
    await patient.connect(gateway.url)
    assert (await patient.call("authenticate", {"token": account.token}))["ok"] is True
    await silent.connect(gateway.url)  # connected after `patient`, so its deadline falls later

    await asyncio.wait_for(silent.disconnected.wait(), timeout=5)  # auth timeout is 0.6 s in these tests
    assert not patient.disconnected.is_set()
    assert await patient.call("leave:conversation", {"conversationId": "any"}) == {"ok": True}


async def test_join_conversation_is_checked_upstream(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], upstreams: Any
) -> None:
    mine, theirs = make_account(), make_account()
    _conversation(upstreams, mine, "conv-join-own")
    _conversation(upstreams, theirs, "conv-join-foreign")
    _conversation(upstreams, theirs, "leaky-join")  # an upstream that forgets to scope: the gateway still refuses
    probe = sockets()
    await probe.connect(gateway.url, token=mine.token)

    assert await probe.call("join:conversation", {"conversationId": "conv-join-own"}) == {"ok": True}
    assert await probe.call("join:conversation", {"conversationId": "conv-join-foreign"}) == {
        "ok": False, "code": "NOT_FOUND"}
    assert await probe.call("join:conversation", {"conversationId": "leaky-join"}) == {
        "ok": False, "code": "NOT_FOUND"}
    assert ("GetConversation", f"Bearer {mine.token}") in upstreams.directory.forwarded_tokens


async def test_malformed_payloads_get_error_acks(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any]
) -> None:
    probe = sockets()
    await probe.connect(gateway.url, token=make_account().token)
    for payload in (None, "conv", 42, [], {}, {"conversationId": 5}, {"conversationId": ""}):
        assert await probe.call("join:conversation", payload) == {"ok": False, "code": "VALIDATION_FAILED"}
        assert await probe.call("typing:start", payload) == {"ok": False, "code": "VALIDATION_FAILED"}
    assert await probe.call("authenticate", None) == {"ok": False, "code": "VALIDATION_FAILED"}
    assert probe.client.connected


async def test_typing_is_relayed_to_the_others_in_the_room(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], upstreams: Any
) -> None:
    first = make_account()
    second = make_account(tenant_id=first.tenant_id)
    _conversation(upstreams, first, "conv-typing")
    alice, bob, carol = sockets(), sockets(), sockets()
    await alice.connect(gateway.url, token=first.token)
    await bob.connect(gateway.url, token=second.token)
    await carol.connect(gateway.url, token=second.token)  # same tenant, never joins the conversation
    for probe in (alice, bob):
        assert await probe.call("join:conversation", {"conversationId": "conv-typing"}) == {"ok": True}

    assert await carol.call("typing:start", {"conversationId": "conv-typing"}) == {"ok": False,
                                                                                  "code": "NOT_JOINED"}
    assert await alice.call("typing:start", {"conversationId": "conv-typing"}) == {"ok": True}
    assert await bob.next_event("typing:start") == {"conversationId": "conv-typing", "userId": first.user_id}
    assert await bob.call("typing:stop", {"conversationId": "conv-typing"}) == {"ok": True}
    assert await alice.next_event("typing:stop") == {"conversationId": "conv-typing", "userId": second.user_id}
    # In-order delivery: had alice received her own typing:start, it would be before bob's typing:stop.
    assert alice.names() == ["typing:stop"]
    assert bob.names() == ["typing:start"]
    assert await carol.call("leave:conversation", {"conversationId": "conv-typing"}) == {"ok": True}
    assert "typing:start" not in carol.names()

    assert await bob.call("leave:conversation", {"conversationId": "conv-typing"}) == {"ok": True}
    assert await bob.call("typing:start", {"conversationId": "conv-typing"}) == {"ok": False, "code": "NOT_JOINED"}


async def test_an_expired_token_is_refused_at_the_handshake(
    gateway: Any, sockets: Callable[[], Any], issuer: Any, make_account: Callable[..., Any]
) -> None:
    account = make_account()
    expired = issuer.user_token(user_id=account.user_id, tenant_id=account.tenant_id, ttl=-60)
    probe = sockets()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await probe.connect(gateway.url, token=expired)
    assert not probe.client.connected
    assert probe.connect_errors and probe.connect_errors[0]["message"] == "TOKEN_EXPIRED"
    assert probe.connect_errors[0]["data"]["code"] == "TOKEN_EXPIRED"

    service = sockets()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await service.connect(gateway.url, token=issuer.service_token())
    assert service.connect_errors[0]["message"] == "TOKEN_INVALID"


async def test_a_token_that_expires_while_connected_must_be_renewed(
    gateway: Any, sockets: Callable[[], Any], issuer: Any, make_account: Callable[..., Any], upstreams: Any
) -> None:
    account = make_account()
    _conversation(upstreams, account, "conv-expiry")
    # a 3 s token: long enough to connect and join on a loaded machine, short enough for the sweep to catch
    short = issuer.user_token(user_id=account.user_id, tenant_id=account.tenant_id, ttl=3)
    renewing, lapsing = sockets(), sockets()
    await renewing.connect(gateway.url, token=short)
    await lapsing.connect(gateway.url, token=short)
    assert await renewing.call("join:conversation", {"conversationId": "conv-expiry"}) == {"ok": True}

    # The sweep (every 0.2 s here) signs both out when the token expires and tells them so.
    assert await renewing.next_event("auth:expired") == {"code": "TOKEN_EXPIRED"}
    assert await lapsing.next_event("auth:expired") == {"code": "TOKEN_EXPIRED"}
    assert await renewing.call("typing:start", {"conversationId": "conv-expiry"}) == {
        "ok": False, "code": "UNAUTHENTICATED"}
    fresh = issuer.user_token(user_id=account.user_id, tenant_id=account.tenant_id, ttl=600)
    assert (await renewing.call("authenticate", {"token": fresh}))["ok"] is True

    await asyncio.wait_for(lapsing.disconnected.wait(), timeout=5)  # did not re-authenticate in time
    assert renewing.client.connected and not renewing.disconnected.is_set()
    assert await renewing.call("join:conversation", {"conversationId": "conv-expiry"}) == {"ok": True}


async def test_each_event_checks_the_token_expiry(
    gateway_factory: Callable[..., Any], sockets: Callable[[], Any], issuer: Any, make_account: Callable[..., Any],
    upstreams: Any
) -> None:
    running = await gateway_factory(socket_sweep_interval_seconds=60)  # no sweep during this test
    account = make_account()
    _conversation(upstreams, account, "conv-event-expiry")
    # 3 s: long enough to connect and join on a loaded machine
    short = issuer.user_token(user_id=account.user_id, tenant_id=account.tenant_id, ttl=3)
    probe = sockets()
    await probe.connect(running.url, token=short)
    assert await probe.call("join:conversation", {"conversationId": "conv-event-expiry"}) == {"ok": True}
    await asyncio.sleep(max(0.0, int(time.time()) + 4 - time.time()))  # past the token's exp: a precondition
    assert await probe.call("typing:start", {"conversationId": "conv-event-expiry"}) == {
        "ok": False, "code": "TOKEN_EXPIRED"}
    assert await probe.next_event("auth:expired") == {"code": "TOKEN_EXPIRED"}
    await asyncio.wait_for(probe.disconnected.wait(), timeout=5)


async def test_polling_transport_and_cors_origin(gateway: Any, make_account: Callable[..., Any]) -> None:
    """Engine.IO long-polling, spoken by hand: handshake, Socket.IO CONNECT with the token, the connect ack."""
    token = make_account().token
    polling = {"EIO": "4", "transport": "polling"}
    origin = {"Origin": "http://localhost:5173"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        handshake = await client.get("/socket.io/", params=polling, headers=origin)
        assert handshake.status_code == 200
        assert handshake.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert handshake.headers["x-content-type-options"] == "nosniff"
        sid = json.loads(handshake.text[1:])["sid"]
        session = {**polling, "sid": sid}
        sent = await client.post("/socket.io/", params=session, content="40" + json.dumps({"token": token}),
                                 headers={**origin, "Content-Type": "text/plain;charset=UTF-8"})
        assert sent.status_code == 200
        connected = await client.get("/socket.io/", params=session, headers=origin)
        # the CONNECT ack (the presence announcement of the sign-in may share the poll)
        assert any(packet.startswith("40{") and '"sid"' in packet for packet in connected.text.split("\x1e"))
        await client.post("/socket.io/", params=session, content="1", headers=origin)  # engine.io close

        refused = await client.get("/socket.io/", params=polling, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 400


async def test_two_replicas_share_rooms_through_redis(
    gateway: Any, gateway_factory: Callable[..., Any], sockets: Callable[[], Any], make_account: Callable[..., Any],
    upstreams: Any, realtime: Callable[..., Any], wait_subscribed: Callable[..., Any]
) -> None:
    replica = await gateway_factory(socketio_channel=gateway.settings.socketio_channel)
    first = make_account()
    second = make_account(tenant_id=first.tenant_id)
    _conversation(upstreams, first, "conv-replicas")
    alice, bob = sockets(), sockets()
    await alice.connect(gateway.url, token=first.token)
    await bob.connect(replica.url, token=second.token)
    await wait_subscribed(gateway.settings.socketio_channel, minimum=2)
    for probe in (alice, bob):
        assert await probe.call("join:conversation", {"conversationId": "conv-replicas"}) == {"ok": True}

    assert await alice.call("typing:start", {"conversationId": "conv-replicas"}) == {"ok": True}
    assert await bob.next_event("typing:start") == {"conversationId": "conv-replicas", "userId": first.user_id}

    update = await realtime().emit(first.tenant_id, "conversation:updated", {"id": "conv-replicas", "status": "open"})
    assert await alice.next_event("conversation:updated") == update
    assert await bob.next_event("conversation:updated") == update
    assert "typing:start" not in alice.names()
