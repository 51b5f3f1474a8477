"""The 24-hour customer-service window (reference §8): async 131047 by default, sync and off on demand,
opened by guest messages or by ``POST /_sim/windows``, per phone number and per BSUID."""

import asyncio
import time
from typing import Any

import httpx

URL = "/v21.0/106540352242922/messages"

REENGAGEMENT = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the customer last replied "
        "to this number."
    },
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}


async def test_default_is_async_a_closed_window_answers_200_then_fails_with_meta_shape(
    sim: httpx.AsyncClient, receiver: Any, kit: Any
) -> None:
    await kit.register(sim, receiver.url)
    assert (await sim.get("/_sim/config")).json()["windowEnforcement"] == "async"
    response = await sim.post(URL, json=kit.text_send(), headers=kit.auth())
    assert response.status_code == 200
    wamid = response.json()["messages"][0]["id"]
    (failed,) = kit.statuses(await receiver.wait_for(1))
    assert failed["id"] == wamid and failed["status"] == "failed"
    assert failed["recipient_id"] == kit.GUEST
    assert failed["errors"] == [REENGAGEMENT]
    assert "pricing" not in failed and "conversation" not in failed
    await asyncio.sleep(0.1)
    assert len(receiver.received) == 1  # no sent/delivered/read after the failure


async def test_templates_go_through_a_closed_window(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    template = {
        "messaging_product": "whatsapp",
        "to": kit.GUEST,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    assert (await sim.post(URL, json=template, headers=kit.auth())).status_code == 200
    statuses = kit.statuses(await receiver.wait_for(3))
    assert [item["status"] for item in statuses] == ["sent", "delivered", "read"]


async def test_windows_endpoint_opens_and_closes(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/config", json={"windowEnforcement": "sync"})
    opened = await kit.open_window(sim, "+1 650-555-1234")
    assert opened["open"] is True and opened["recipient"] == kit.GUEST
    assert (await sim.post(URL, json=kit.text_send(), headers=kit.auth())).status_code == 200

    # The guest wrote 25 hours ago: the window has closed.
    closed = await kit.open_window(sim, kit.GUEST, at=time.time() - 25 * 3600)
    assert closed["open"] is False
    response = await sim.post(URL, json=kit.text_send(), headers=kit.auth())
    assert response.status_code == 400 and response.json()["error"]["code"] == 131047

    # 23 hours ago: still open.
    assert (await kit.open_window(sim, kit.GUEST, at=time.time() - 23 * 3600))["open"] is True
    assert (await sim.post(URL, json=kit.text_send(), headers=kit.auth())).status_code == 200

    bad = await sim.post("/_sim/windows", json={"phoneNumberId": kit.PNID})
    assert bad.status_code == 422
    unknown = await sim.post("/_sim/windows", json={"phoneNumberId": "404", "waId": kit.GUEST})
    assert unknown.status_code == 404


async def test_enforcement_off_sends_anything(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/config", json={"windowEnforcement": "off"})
    assert (await sim.post(URL, json=kit.text_send(), headers=kit.auth())).status_code == 200
    statuses = kit.statuses(await receiver.wait_for(3))
    assert [item["status"] for item in statuses] == ["sent", "delivered", "read"]
    assert (await sim.get("/_sim/sent-messages")).json()["items"][0]["windowOpen"] is False


async def test_a_bsuid_guest_opens_the_window_for_sends_to_the_bsuid(
    sim: httpx.AsyncClient, receiver: Any, kit: Any
) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/config", json={"windowEnforcement": "sync"})
    bsuid = "US.13491208655302741918"
    send = {"messaging_product": "whatsapp", "recipient": bsuid, "type": "text", "text": {"body": "hi"}}
    assert (await sim.post(URL, json=send, headers=kit.auth())).json()["error"]["code"] == 131047

    guest = await sim.post(
        "/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "userId": bsuid, "name": "Ana", "text": "Olá"}
    )
    assert guest.status_code == 200, guest.text
    value = guest.json()["payload"]["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "user_id": bsuid}]
    message = value["messages"][0]
    assert "from" not in message and message["from_user_id"] == bsuid
    assert (await sim.post(URL, json=send, headers=kit.auth())).status_code == 200
    # the phone number of that guest is unknown, so its window is still closed
    assert (await sim.post(URL, json=kit.text_send(), headers=kit.auth())).status_code == 400

    both = await sim.post(
        "/_sim/guest-messages",
        json={"phoneNumberId": kit.PNID, "from": "447700900123", "userId": "GB.998877", "text": "hello"},
    )
    contact = both.json()["payload"]["entry"][0]["changes"][0]["value"]["contacts"][0]
    assert contact["wa_id"] == "447700900123" and contact["user_id"] == "GB.998877"
    for to in ({"to": "447700900123"}, {"recipient": "GB.998877"}):
        body = {"messaging_product": "whatsapp", **to, "type": "text", "text": {"body": "hi"}}
        assert (await sim.post(URL, json=body, headers=kit.auth())).status_code == 200
    neither = await sim.post("/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "text": "x"})
    assert neither.status_code == 422
