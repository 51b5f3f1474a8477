"""Issue 5 with the frontend's own client (socket.io-client@4 under Node): malformed client events and unknown ones
get error acknowledgements and the socket stays up; a burst over the per-socket limit gets
`{ok: false, code: "RATE_LIMITED", retryAfterMs}` while other sockets are unaffected."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from e2e_support import StackUrls, register_hotel
from js_client import JsDriver, JsSocket
from realtime_support import guest_message

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

BURST = 30  # the gateway's EVA_SOCKET_EVENT_BURST default (10 events/s sustained)
MALFORMED: list[tuple[str, tuple[Any, ...], str]] = [
    ("join:conversation", ("a string",), "VALIDATION_FAILED"),
    ("join:conversation", (42,), "VALIDATION_FAILED"),
    ("join:conversation", (None,), "VALIDATION_FAILED"),
    ("join:conversation", ([{"conversationId": "x"}],), "VALIDATION_FAILED"),
    ("join:conversation", (), "VALIDATION_FAILED"),
    ("join:conversation", ({"conversationId": 7},), "VALIDATION_FAILED"),
    ("join:conversation", ({"conversationId": "   "},), "VALIDATION_FAILED"),
    ("join:conversation", ({"conversationId": "x" * 500},), "VALIDATION_FAILED"),
    ("leave:conversation", (True,), "VALIDATION_FAILED"),
    ("typing:start", ("x",), "VALIDATION_FAILED"),
    ("typing:stop", ({},), "VALIDATION_FAILED"),
    ("resume", ({"lastSeq": "x"},), "VALIDATION_FAILED"),
    ("authenticate", (12,), "VALIDATION_FAILED"),
    ("no:such-event", ({"a": 1},), "UNKNOWN_EVENT"),
    ("message:new", ({"seq": 1},), "UNKNOWN_EVENT"),  # a server event sent by a client
    ("join:conversation", ({"conversationId": "x"}, "extra", 3), "NOT_FOUND"),
]


async def connected(socket: JsSocket) -> bool:
    return bool((await socket.state())["connected"]) and not socket.disconnected()


async def test_malformed_and_unknown_events_get_error_acks_and_the_socket_stays(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack)
    socket = js.socket("sloppy")
    await socket.connect(stack.gateway_replica, hotel.access_token)
    first = await guest_message(http, stack, hotel, socket, "before the junk")
    conversation = first.conversation_id
    for event, args, code in MALFORMED:
        ack = await socket.emit_with_ack(event, *args)
        assert ack == {"ok": False, "code": code}, (event, args, ack)
        assert await connected(socket), (event, args)
    # an event without an ack callback is handled too (nothing to answer), and the socket carries on
    await socket.emit("join:conversation", "no ack wanted")
    await socket.emit("no:such-event")
    assert await socket.emit_with_ack("join:conversation", {"conversationId": conversation}) == {"ok": True}
    message = await guest_message(http, stack, hotel, socket, "after the junk", wa_id=first.event["contact"]["waId"])
    assert message.conversation_id == conversation and await connected(socket)


async def test_a_burst_is_rate_limited_per_socket(stack: StackUrls, http: httpx.AsyncClient, js: JsDriver) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    noisy, calm = js.socket("noisy"), js.socket("calm")
    await noisy.connect(stack.gateway, hotel.access_token)
    await calm.connect(stack.gateway, hotel.access_token)  # the same user, another socket: its own budget

    started = time.monotonic()
    acks = await noisy.burst("leave:conversation", {"conversationId": "any"}, count=3 * BURST)
    elapsed = time.monotonic() - started
    allowed = [ack for ack in acks if ack.get("ok") is True]
    limited = [ack for ack in acks if ack.get("code") == "RATE_LIMITED"]
    assert len(allowed) + len(limited) == len(acks), acks
    # the burst, plus at most what refilled (10/s) while the server handled it
    assert BURST <= len(allowed) <= BURST + 10 * (elapsed + 0.5), (len(allowed), elapsed)
    assert limited, acks
    for ack in limited:
        assert ack["ok"] is False and isinstance(ack["retryAfterMs"], int) and 0 < ack["retryAfterMs"] <= 1000, ack
    assert await connected(noisy)
    # another socket (of the same user) has its own budget
    assert await calm.emit_with_ack("leave:conversation", {"conversationId": "any"}) == {"ok": True}

    # authenticate is limited too (here with a token that is refused, so each allowed one answers TOKEN_INVALID)
    anonymous = js.socket("anonymous")
    await anonymous.connect(stack.gateway_replica)
    acks = await anonymous.burst("authenticate", {"token": "not-a-jwt"}, count=3 * BURST)
    assert {ack.get("code") for ack in acks} == {"TOKEN_INVALID", "RATE_LIMITED"}, acks
    assert sum(ack.get("code") == "TOKEN_INVALID" for ack in acks) >= BURST

    # after the wait it was told, the noisy socket is served again
    deadline = time.monotonic() + 10
    while True:
        ack = await noisy.emit_with_ack("leave:conversation", {"conversationId": "any"})
        if ack.get("ok") is True or time.monotonic() > deadline:
            break
        await asyncio.sleep(ack["retryAfterMs"] / 1000)
    assert ack == {"ok": True}
    assert await connected(noisy)
