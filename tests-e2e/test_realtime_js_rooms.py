"""Issue 5 with the frontend's own client (socket.io-client@4 under Node), two tenants, clients on both gateway
replicas: a guest's message reaches every client of its hotel once as `message:new` and `conversation:updated` (the
REST object plus `seq`) and never a client of the other hotel; conversation rooms are joined only for the caller's
own conversations; typing reaches the others in the room, not the sender, not the other hotel, with no seq."""

from __future__ import annotations

import httpx
import pytest
from e2e_support import StackUrls, create_user, register_hotel
from js_client import WEBSOCKET_ONLY, JsDriver, JsSocket
from realtime_support import assert_consecutive, differences, guest_message, seqs, settled, wamid_is

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

MESSAGE_FIELDS = {"id", "conversationId", "contactId", "wamid", "direction", "type", "status", "content", "sentAt",
                  "createdAt", "seq"}
CONVERSATION_FIELDS = {"id", "tenantId", "contactId", "status", "assignedTo", "lastMessageAt", "lastMessagePreview",
                       "unreadCount", "windowExpiresAt", "createdAt", "updatedAt", "seq"}


def mentions(socket: JsSocket, *values: str) -> list[tuple[str, object]]:
    """The events `socket` received whose payload mentions any of `values` (ids of another tenant)."""
    return [(name, data) for name, data in socket.events() if any(value in repr(data) for value in values)]


async def test_a_guest_message_reaches_its_hotel_on_both_replicas_and_never_the_other(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    a1, a2 = js.socket("a-replica-1"), js.socket("a-replica-2")
    b1, b2 = js.socket("b-replica-1"), js.socket("b-replica-2")
    await a1.connect(stack.gateway, hotel_a.access_token)
    await a2.connect(stack.gateway_replica, hotel_a.access_token)
    await b1.connect(stack.gateway, hotel_b.access_token, transports=WEBSOCKET_ONLY)
    await b2.connect(stack.gateway_replica, hotel_b.access_token)

    first = await guest_message(http, stack, hotel_a, a1, "Hola, ¿a qué hora es el desayuno? 🍳")
    guest = first.event["contact"]["waId"]
    second = await guest_message(http, stack, hotel_a, a1, "and is there parking?", wa_id=guest)
    assert second.conversation_id == first.conversation_id and second.seq > first.seq
    for socket in (a1, a2):
        for sent in (first, second):
            event = await socket.wait_for("message:new", wamid_is(sent.wamid))
            assert event == sent.event  # the same REST object and seq on both replicas
            assert event["conversationId"] == first.conversation_id and event["direction"] == "inbound"
            assert isinstance(event["id"], str) and event["id"] and isinstance(event["seq"], int)
        updated = await socket.wait_for("conversation:updated", lambda d: d.get("id") == first.conversation_id)
        assert isinstance(updated["seq"], int) and updated["seq"] >= 1

    # The events carry the REST objects: the same fields with the same values as GET /api/messages and the
    # conversation (message:new adds the guest's contact).
    await settled(a1, second)
    response = await http.get(f"{stack.gateway}/api/messages", params={"conversationId": first.conversation_id},
                              headers=hotel_a.auth)
    assert response.status_code == 200, response.text
    stored = {item["wamid"]: item for item in response.json()["items"]}
    for sent in (first, second):
        assert MESSAGE_FIELDS <= set(sent.event), sorted(sent.event)
        assert differences(sent.event, stored[sent.wamid], extra=frozenset({"contact"})) == []
    response = await http.get(f"{stack.gateway}/api/conversations/{first.conversation_id}", headers=hotel_a.auth)
    assert response.status_code == 200, response.text
    latest = [d for d in a1.events("conversation:updated") if d["id"] == first.conversation_id][-1]
    assert CONVERSATION_FIELDS <= set(latest), sorted(latest)
    assert differences(latest, response.json()) == []
    assert latest["lastMessagePreview"] == "and is there parking?" and latest["unreadCount"] == 2

    # Hotel B's own guest writes afterwards: once B's sockets have it, A's events would have reached them before.
    own = await guest_message(http, stack, hotel_b, b1, "hotel B's guest")
    await b2.wait_for("message:new", wamid_is(own.wamid))
    a_ids = (first.conversation_id, first.wamid, second.wamid, first.event["id"], second.event["id"])
    for socket in (b1, b2):
        assert mentions(socket, *a_ids) == [], socket.name
        assert {data["conversationId"] for data in socket.events("message:new")} == {own.conversation_id}
    for socket in (a1, a2):
        assert mentions(socket, own.conversation_id, own.wamid) == [], socket.name

    # Each seq-bearing event reached each client once, in order, the same on both replicas.
    for socket in (a1, a2):
        assert [d["wamid"] for d in socket.events("message:new")] == [first.wamid, second.wamid], socket.name
        assert_consecutive(seqs(socket.seq_events()), socket.name)
    on_1, on_2 = [(r.event, r.data) for r in a1.seq_events()], [(r.event, r.data) for r in a2.seq_events()]
    common = min(len(on_1), len(on_2))
    assert common >= 4 and on_1[:common] == on_2[:common]


async def test_join_is_checked_and_leave_works(stack: StackUrls, http: httpx.AsyncClient, js: JsDriver) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    a, b = js.socket("a"), js.socket("b")
    await a.connect(stack.gateway, hotel_a.access_token)
    await b.connect(stack.gateway_replica, hotel_b.access_token)
    own = (await guest_message(http, stack, hotel_a, a, "A's guest")).conversation_id
    foreign = (await guest_message(http, stack, hotel_b, b, "B's guest")).conversation_id

    for socket, theirs in ((a, foreign), (b, own)):
        refused = await socket.emit_with_ack("join:conversation", {"conversationId": theirs})
        assert refused == {"ok": False, "code": "NOT_FOUND"}, refused
        refused = await socket.emit_with_ack("join:conversation", {"conversationId": "no-such-conversation"})
        assert refused["ok"] is False and refused["code"] in {"NOT_FOUND", "VALIDATION_FAILED"}, refused
    assert await a.emit_with_ack("join:conversation", {"conversationId": own}) == {"ok": True}
    assert await a.emit_with_ack("typing:start", {"conversationId": own}) == {"ok": True}  # a member now
    assert await a.emit_with_ack("leave:conversation", {"conversationId": own}) == {"ok": True}
    assert await a.emit_with_ack("typing:start", {"conversationId": own}) == {"ok": False, "code": "NOT_JOINED"}
    # a refused join put nobody in the room: B cannot relay typing into A's conversation
    assert await b.emit_with_ack("typing:start", {"conversationId": own}) == {"ok": False, "code": "NOT_JOINED"}


async def test_typing_reaches_the_others_in_the_room_only(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    attendant = await create_user(http, stack, hotel_a.access_token)
    sender, listener = js.socket("sender"), js.socket("listener")  # two users of A, on different replicas
    bystander, other = js.socket("bystander"), js.socket("other-hotel")
    await sender.connect(stack.gateway, hotel_a.access_token)
    await listener.connect(stack.gateway_replica, attendant.access_token)
    await bystander.connect(stack.gateway_replica, hotel_a.access_token)  # A, but not in the conversation's room
    await other.connect(stack.gateway, hotel_b.access_token)
    conversation = (await guest_message(http, stack, hotel_a, sender, "typing test")).conversation_id
    b_conversation = (await guest_message(http, stack, hotel_b, other, "B's typing test")).conversation_id
    for socket in (sender, listener):
        assert await socket.emit_with_ack("join:conversation", {"conversationId": conversation}) == {"ok": True}
    assert await other.emit_with_ack("join:conversation", {"conversationId": b_conversation}) == {"ok": True}

    for event in ("typing:start", "typing:stop"):
        assert await sender.emit_with_ack(event, {"conversationId": conversation}) == {"ok": True}
        relayed = await listener.wait_for(event, lambda d: d.get("userId") == hotel_a.user["id"])
        assert relayed == {"conversationId": conversation, "userId": hotel_a.user["id"]}  # no seq
        # the listener answers: once the sender hears it, its own relay (published before) would have arrived too
        assert await listener.emit_with_ack(event, {"conversationId": conversation}) == {"ok": True}
        heard = await sender.wait_for(event, lambda d: d.get("userId") == attendant.id)
        assert heard == {"conversationId": conversation, "userId": attendant.id}
        assert [d for d in sender.events(event) if d["userId"] == hotel_a.user["id"]] == []
        assert [d for d in listener.events(event) if d["userId"] == attendant.id] == []

    # B types in its own conversation: once B's sockets hear it, A's relays (published before) would have too.
    b_listener = js.socket("b-listener")
    await b_listener.connect(stack.gateway_replica, hotel_b.access_token)
    assert await b_listener.emit_with_ack("join:conversation", {"conversationId": b_conversation}) == {"ok": True}
    assert await b_listener.emit_with_ack("typing:start", {"conversationId": b_conversation}) == {"ok": True}
    assert await other.wait_for("typing:start") == {"conversationId": b_conversation, "userId": hotel_b.user["id"]}
    assert [name for name, _ in other.events() if name.startswith("typing:")] == ["typing:start"]
    # the bystander joins now: the next relay reaches it, and it is the first typing event it ever got
    assert await bystander.emit_with_ack("join:conversation", {"conversationId": conversation}) == {"ok": True}
    assert await listener.emit_with_ack("typing:start", {"conversationId": conversation}) == {"ok": True}
    assert await bystander.wait_for("typing:start") == {"conversationId": conversation, "userId": attendant.id}
    assert [name for name, _ in bystander.events() if name.startswith("typing:")] == ["typing:start"]
    assert all(not name.startswith("typing:") for name, _ in b_listener.events())


async def test_a_socket_that_signs_in_as_another_tenant_leaves_everything_of_the_first(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    switcher, watcher_a, watcher_b = js.socket("switcher"), js.socket("watcher-a"), js.socket("watcher-b")
    await switcher.connect(stack.gateway, hotel_a.access_token)
    await watcher_a.connect(stack.gateway_replica, hotel_a.access_token)
    await watcher_b.connect(stack.gateway_replica, hotel_b.access_token)
    before = await guest_message(http, stack, hotel_a, switcher, "while the socket is A's")
    conversation_a = before.conversation_id
    assert await switcher.emit_with_ack("join:conversation", {"conversationId": conversation_a}) == {"ok": True}
    await settled(switcher, before)

    ack, mark = await switcher.emit_acked_at("authenticate", {"token": hotel_b.access_token})
    assert ack["ok"] is True and ack["user"]["tenantId"] == hotel_b.tenant["id"], ack

    # A's conversation room and tenant room are left: no join, no typing, no events of A any more
    assert await switcher.emit_with_ack("typing:start", {"conversationId": conversation_a}) == {
        "ok": False, "code": "NOT_JOINED"}
    assert await switcher.emit_with_ack("join:conversation", {"conversationId": conversation_a}) == {
        "ok": False, "code": "NOT_FOUND"}
    assert await watcher_a.emit_with_ack("join:conversation", {"conversationId": conversation_a}) == {"ok": True}
    assert await watcher_a.emit_with_ack("typing:start", {"conversationId": conversation_a}) == {"ok": True}
    after_a = await guest_message(http, stack, hotel_a, watcher_a, "A's guest again",
                                  wa_id=before.event["contact"]["waId"])
    await settled(watcher_a, after_a)
    # B's guest writes last: once the socket has it, anything of A published before would have reached it
    own = await guest_message(http, stack, hotel_b, switcher, "now the socket is B's", timeout=30)
    await watcher_b.wait_for("message:new", wamid_is(own.wamid))
    since = [r for r in switcher.received() if r.index >= mark]
    assert [(r.event, r.data) for r in since if conversation_a in repr(r.data) or after_a.wamid in repr(r.data)] == []
    assert [r.event for r in since if r.event.startswith("typing:")] == []
    # its seq-bearing events are B's now, in B's sequence, exactly as B's own socket got them
    await settled(switcher, own)
    await settled(watcher_b, own)
    switched = [r for r in switcher.seq_events() if r.index >= mark]
    assert_consecutive(seqs(switched), "after the switch")
    b_seen = {r.data["seq"]: (r.event, r.data) for r in watcher_b.seq_events()}
    assert [b_seen.get(r.data["seq"]) for r in switched] == [(r.event, r.data) for r in switched]
