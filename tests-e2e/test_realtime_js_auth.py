"""Issue 5 with the frontend's own client (socket.io-client@4 under Node): signing a socket in with the handshake's
`auth.token` or the `authenticate` event within 5 s, refusals with a clear code, and a token that expires while the
socket is connected (renewed with `authenticate`, or the socket is closed)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from e2e_support import StackUrls, register_hotel
from js_client import WEBSOCKET_ONLY, JsDriver
from realtime_support import guest_message, short_lived_token, token_expiry, wamid_is

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

AUTH_TIMEOUT = 5.0  # the gateway's EVA_SOCKET_AUTH_TIMEOUT_SECONDS default
SERVER_CLOSED = "io server disconnect"


async def test_handshake_token_signs_in_with_the_default_transports_and_upgrades(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack)
    first, second = js.socket("replica-1"), js.socket("replica-2")
    await first.connect(stack.gateway, hotel.access_token)  # polling first, then the upgrade (the client's default)
    await second.connect(stack.gateway_replica, hotel.access_token)
    assert first.opened_with == "polling" and second.opened_with == "polling"
    assert (await first.wait_lifecycle("upgrade"))["transport"] == "websocket"
    assert (await second.wait_lifecycle("upgrade"))["transport"] == "websocket"

    # signed in: in the tenant's room on both replicas
    message = await guest_message(http, stack, hotel, first, "is the pool open?")
    assert (await second.wait_for("message:new", wamid_is(message.wamid)))["seq"] == message.seq
    assert (await first.state())["connected"] and (await second.state())["connected"]


async def test_authenticate_event_within_the_deadline(stack: StackUrls, http: httpx.AsyncClient, js: JsDriver) -> None:
    hotel = await register_hotel(http, stack)
    late, witness = js.socket("late"), js.socket("witness")
    await late.connect(stack.gateway_replica)  # no auth at the handshake: accepted, on the 5 s clock
    await witness.connect(stack.gateway_replica)

    assert await late.emit_with_ack("join:conversation", {"conversationId": "x"}) == {
        "ok": False, "code": "UNAUTHENTICATED"}
    ack = await late.emit_with_ack("authenticate", {"token": hotel.access_token})
    assert ack["ok"] is True, ack
    assert ack["user"]["id"] == hotel.user["id"] and ack["user"]["tenantId"] == hotel.tenant["id"]
    assert ack["user"]["role"] == "admin"

    # the witness never authenticated: it is closed by the server when the deadline passes; `late` stays
    closed = await witness.wait_lifecycle("disconnect", timeout=AUTH_TIMEOUT + 15)
    assert closed["reason"] == SERVER_CLOSED
    assert (await late.state())["connected"] and not late.disconnected()
    message = await guest_message(http, stack, hotel, late, "a late socket still hears the tenant")
    assert message.seq >= 1


async def test_no_authentication_within_five_seconds_is_disconnected(stack: StackUrls, js: JsDriver) -> None:
    for transports in (None, WEBSOCKET_ONLY):
        socket = js.socket()
        await socket.connect(stack.gateway, transports=transports)
        started = time.monotonic()
        closed = await socket.wait_lifecycle("disconnect", timeout=AUTH_TIMEOUT + 15)
        assert closed["reason"] == SERVER_CLOSED, closed
        assert time.monotonic() - started >= AUTH_TIMEOUT - 1.0  # closed by the deadline, not refused at once
        assert socket.events() == []  # nothing was delivered to a socket that never signed in


async def test_bad_tokens_are_refused_with_a_code(stack: StackUrls, http: httpx.AsyncClient, js: JsDriver) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    tampered = hotel.access_token[:-4] + ("AAAA" if not hotel.access_token.endswith("AAAA") else "BBBB")
    for url in (stack.gateway, stack.gateway_replica):
        for token in ("not-a-jwt", tampered):
            refused = await js.socket().connect_error(url, token)
            assert refused.message in {"TOKEN_INVALID", "UNAUTHENTICATED"}, refused
            assert refused.data["code"] == refused.message and refused.data["detail"], refused.data
        refused = await js.socket().connect_error(url, auth={"token": 12345})
        assert refused.data["code"] == "TOKEN_INVALID", refused.data

    expired = short_lived_token(hotel.access_token, lifetime_seconds=-120)
    refused = await js.socket().connect_error(stack.gateway, expired)
    assert refused.data["code"] == "TOKEN_EXPIRED", refused.data

    socket = js.socket()
    await socket.connect(stack.gateway)
    for payload, code in (({"token": "not-a-jwt"}, "TOKEN_INVALID"), ({"token": tampered}, "TOKEN_INVALID"),
                          ({"token": expired}, "TOKEN_EXPIRED"), ({}, "VALIDATION_FAILED"),
                          ({"token": ""}, "VALIDATION_FAILED"), ("a string", "VALIDATION_FAILED")):
        assert await socket.emit_with_ack("authenticate", payload) == {"ok": False, "code": code}, payload
    assert (await socket.state())["connected"]  # refusals are acks; the socket stays on its 5 s clock
    ack = await socket.emit_with_ack("authenticate", {"token": hotel.access_token})
    assert ack["ok"] is True and ack["user"]["id"] == hotel.user["id"]


async def test_a_token_that_expires_while_connected_is_renewed_or_the_socket_closed(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack)
    watcher = js.socket("watcher")
    await watcher.connect(stack.gateway, hotel.access_token)
    conversation = (await guest_message(http, stack, hotel, watcher, "a conversation to join")).conversation_id

    renewing_token = short_lived_token(hotel.access_token, lifetime_seconds=4)
    lapsing_token = short_lived_token(hotel.access_token, lifetime_seconds=8)
    renewing, lapsing = js.socket("renewing"), js.socket("lapsing")
    await renewing.connect(stack.gateway_replica, renewing_token)
    await lapsing.connect(stack.gateway, lapsing_token)
    assert await renewing.emit_with_ack("join:conversation", {"conversationId": conversation}) == {"ok": True}

    # Past the renewing token's expiry (a precondition): the next event is refused (TOKEN_EXPIRED, or
    # UNAUTHENTICATED when the server's sweep signed it out first) and the socket is told so.
    await asyncio.sleep(max(0.0, token_expiry(renewing_token) + 0.2 - time.time()))
    refused = await renewing.emit_with_ack("typing:start", {"conversationId": conversation})
    assert refused["ok"] is False and refused["code"] in {"TOKEN_EXPIRED", "UNAUTHENTICATED"}, refused
    assert await renewing.wait_for("auth:expired") == {"code": "TOKEN_EXPIRED"}
    ack = await renewing.emit_with_ack("authenticate", {"token": hotel.access_token})
    assert ack["ok"] is True and ack["user"]["id"] == hotel.user["id"]

    # The lapsing socket is told too (by the server's sweep or its next event), and closed 5 s later.
    assert await lapsing.wait_for("auth:expired", timeout=40) == {"code": "TOKEN_EXPIRED"}
    closed = await lapsing.wait_lifecycle("disconnect", timeout=AUTH_TIMEOUT + 15)
    assert closed["reason"] == SERVER_CLOSED

    # The renewed socket outlived its own 5 s deadline (it expired first), is back in its rooms and hears the tenant.
    assert (await renewing.state())["connected"] and not renewing.disconnected()
    assert await renewing.emit_with_ack("join:conversation", {"conversationId": conversation}) == {"ok": True}
    message = await guest_message(http, stack, hotel, watcher, "after the renewal")
    seen = await renewing.wait_for("message:new", wamid_is(message.wamid))
    assert seen["seq"] == message.seq
