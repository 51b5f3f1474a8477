"""Flow 2: a guest writes on WhatsApp (the simulator signs and posts the webhook like Meta) and the hotel's admin
sees it live over Socket.io; a forged delivery is refused and a duplicate stores nothing new."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from e2e_support import SocketRecorder, StackUrls, guest_writes, register_hotel

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def messages_of(http: httpx.AsyncClient, stack: StackUrls, token: str, conversation_id: str) -> list[dict]:
    response = await http.get(f"{stack.gateway}/api/messages", params={"conversationId": conversation_id},
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def test_guest_message_reaches_the_admin_socket_once(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack)
    socket = SocketRecorder()
    await socket.connect(stack.gateway_replica, hotel.access_token)
    try:
        text = "Olá! Há quarto livre hoje? café ☕ https://x.y/z"
        wa_id = "1650555" + str(secrets.randbelow(10**4)).zfill(4)
        sent = await guest_writes(http, stack, hotel.phone_number_id, text, wa_id=wa_id)
        assert sent["delivered"] is True
        assert [a["status"] for a in sent["attempts"]] == [200]  # type: ignore[union-attr,index]

        event = await socket.wait_for("message:new", lambda data: data.get("wamid") == sent["wamid"])
        assert event["content"]["body"] == text
        assert event["direction"] == "inbound" and event["type"] == "text"
        assert event["conversationId"]
        assert event["contact"]["waId"] == wa_id and event["contact"]["name"] == "José Álvarez"
        assert isinstance(event["seq"], int) and event["seq"] >= 1

        stored = await messages_of(http, stack, hotel.access_token, event["conversationId"])
        assert [m["wamid"] for m in stored] == [sent["wamid"]]

        # Meta delivers the same webhook again (at-least-once): nothing new is stored or announced.
        again = await http.post(f"{stack.simulator}/_sim/deliveries", json={
            "payload": sent["payload"], "phoneNumberId": hotel.phone_number_id, "deliveries": 2})
        assert again.status_code == 200 and again.json()["delivered"] is True
        second = await guest_writes(http, stack, hotel.phone_number_id, "second message", wa_id=wa_id)
        await socket.wait_for("message:new", lambda data: data.get("wamid") == second["wamid"])
        stored = await messages_of(http, stack, hotel.access_token, event["conversationId"])
        assert [m["wamid"] for m in stored] == [sent["wamid"], second["wamid"]]
        announced = [e["wamid"] for e in socket.named("message:new")]
        assert announced.count(sent["wamid"]) == 1
    finally:
        await socket.close()


async def test_another_tenant_sees_nothing(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    spy = SocketRecorder()
    await spy.connect(stack.gateway, hotel_b.access_token)
    watcher = SocketRecorder()
    await watcher.connect(stack.gateway, hotel_a.access_token)
    try:
        sent = await guest_writes(http, stack, hotel_a.phone_number_id, "for hotel A only", wa_id="16505550001")
        event = await watcher.wait_for("message:new", lambda data: data.get("wamid") == sent["wamid"])
        await asyncio.sleep(0.5)
        assert spy.named("message:new") == []
        # Hotel A's conversation does not exist for hotel B, by either route to its messages.
        conversation_id = event["conversationId"]
        for path, params in (("/api/messages", {"conversationId": conversation_id}),
                             (f"/api/conversations/{conversation_id}/messages", {})):
            response = await http.get(f"{stack.gateway}{path}", params=params, headers=hotel_b.auth)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == "CONVERSATION_NOT_FOUND", path
    finally:
        await spy.close()
        await watcher.close()


async def test_forged_signature_is_refused_and_nothing_is_stored(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack)
    socket = SocketRecorder()
    await socket.connect(stack.gateway, hotel.access_token)
    try:
        forged_payload = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": hotel.phone_number_id},
                "contacts": [{"profile": {"name": "Mallory"}, "wa_id": "16505559999"}],
                "messages": [{"from": "16505559999", "id": "wamid.FORGED" + secrets.token_hex(6),
                              "timestamp": "1749416383", "type": "text", "text": {"body": "forged"}}]}}]}]}
        for attempt in ({"appSecret": "not-the-app-secret"}, {"signature": "sha256=" + "0" * 64},
                        {"unsigned": True}):
            response = await http.post(f"{stack.simulator}/_sim/deliveries", json={
                "payload": forged_payload, "phoneNumberId": hotel.phone_number_id, "retry": {"maxAttempts": 1},
                **attempt})
            assert response.status_code == 200, response.text
            assert [a["status"] for a in response.json()["attempts"]] == [401], attempt
        genuine = await guest_writes(http, stack, hotel.phone_number_id, "genuine", wa_id="16505559999")
        event = await socket.wait_for("message:new", lambda data: data.get("wamid") == genuine["wamid"])
        assert all(e["content"].get("body") != "forged" for e in socket.named("message:new"))
        stored = await messages_of(http, stack, hotel.access_token, event["conversationId"])
        assert [m["wamid"] for m in stored] == [genuine["wamid"]]
    finally:
        await socket.close()


async def test_meta_handshake(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack)
    url = f"{stack.ingest}/webhooks/whatsapp"
    for token in (hotel.verify_token, stack.platform_verify_token):
        response = await http.get(url, params={"hub.mode": "subscribe", "hub.verify_token": token,
                                               "hub.challenge": "abc-1158201444"})
        assert response.status_code == 200
        assert response.text == "abc-1158201444"
    response = await http.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "wrong",
                                           "hub.challenge": "1"})
    assert response.status_code == 403
