"""Status webhooks after a send: sent → delivered → read, signed, in Meta's v21 shape."""

import asyncio
import json
from typing import Any

import httpx

URL = "/v21.0/106540352242922/messages"


def _statuses(received: list[Any]) -> list[dict[str, Any]]:
    found = []
    for item in received:
        assert item.signature_ok
        for entry in json.loads(item.body)["entry"]:
            for change in entry["changes"]:
                found.extend(change["value"].get("statuses", []))
    return found


async def _open_window(sim: httpx.AsyncClient, kit: Any, wa_id: str = "16505551234") -> None:
    opened = await sim.post("/_sim/windows", json={"phoneNumberId": kit.PNID, "waId": wa_id})
    assert opened.status_code == 200 and opened.json()["open"] is True, opened.text


async def test_send_emits_sent_delivered_read(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await _open_window(sim, kit)
    response = await sim.post(
        URL, json={**kit.text_send(), "biz_opaque_callback_data": "outbox-42"}, headers=kit.auth()
    )
    wamid = response.json()["messages"][0]["id"]
    statuses = _statuses(await receiver.wait_for(3))
    assert [item["status"] for item in statuses] == ["sent", "delivered", "read"]
    assert {item["id"] for item in statuses} == {wamid}
    assert {item["recipient_id"] for item in statuses} == {"16505551234"}
    assert all(item["timestamp"].isdigit() for item in statuses)
    assert all(item["biz_opaque_callback_data"] == "outbox-42" for item in statuses)

    sent, delivered, read = statuses
    assert list(sent) == [
        "id",
        "status",
        "timestamp",
        "recipient_id",
        "biz_opaque_callback_data",
        "conversation",
        "pricing",
    ]
    assert sent["conversation"]["origin"] == {"type": "service"}
    assert int(sent["conversation"]["expiration_timestamp"]) > int(sent["timestamp"])
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert "expiration_timestamp" not in delivered["conversation"]
    assert delivered["conversation"]["id"] == sent["conversation"]["id"]
    assert "pricing" in delivered and "pricing" not in read and "conversation" not in read

    envelope = json.loads(receiver.received[0].body)
    value = envelope["entry"][0]["changes"][0]["value"]
    assert envelope["entry"][0]["id"] == kit.WABA_ID and "contacts" not in value
    assert value["metadata"]["phone_number_id"] == kit.PNID

    record = (await sim.get("/_sim/sent-messages")).json()["items"][0]
    for _ in range(100):  # the record is updated right after each delivery returns
        if len(record["statuses"]) == 3:
            break
        await asyncio.sleep(0.01)
        record = (await sim.get("/_sim/sent-messages")).json()["items"][0]
    assert [(item["status"], item["delivered"]) for item in record["statuses"]] == [
        ("sent", True),
        ("delivered", True),
        ("read", True),
    ]
    attempts = (await sim.get("/_sim/webhook-attempts", params={"kind": "status"})).json()["items"]
    assert len(attempts) == 3


async def test_auto_statuses_can_be_switched_off(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await _open_window(sim, kit)
    config = (await sim.post("/_sim/config", json={"autoStatuses": False})).json()
    assert config["autoStatuses"] is False
    assert (await sim.post(URL, json=kit.text_send(), headers=kit.auth())).status_code == 200
    await asyncio.sleep(0.2)
    assert receiver.received == []


async def test_custom_sequence_reaction_and_template(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await _open_window(sim, kit)
    await sim.post("/_sim/config", json={"statusSequence": ["sent", "read"], "statusDelays": [0.0]})
    created = await sim.post(
        "/_sim/templates",
        json={
            "wabaId": kit.WABA_ID,
            "name": "welcome",
            "language": "en_US",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Welcome to the hotel!"}],
        },
    )
    assert created.status_code == 200, created.text
    template = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "welcome", "language": {"code": "en_US"}},
    }
    await sim.post(URL, json=template, headers=kit.auth())
    statuses = _statuses(await receiver.wait_for(2))
    assert [item["status"] for item in statuses] == ["sent", "read"]
    assert statuses[0]["pricing"]["category"] == "marketing" and statuses[0]["pricing"]["billable"] is True
    assert "pricing" in statuses[1]  # the first of delivered/read carries pricing

    reaction = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "reaction",
        "reaction": {"message_id": "wamid.IN", "emoji": "👍"},
    }
    await sim.post(URL, json=reaction, headers=kit.auth())
    await asyncio.sleep(0.2)
    statuses = _statuses(receiver.received)
    assert [item["status"] for item in statuses] == ["sent", "read", "sent"]


async def test_async_window_enforcement_fails_with_131047(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/config", json={"windowEnforcement": "async"})
    response = await sim.post(URL, json=kit.text_send(), headers=kit.auth())
    assert response.status_code == 200  # Meta accepts, then fails asynchronously
    (failed,) = _statuses(await receiver.wait_for(1))
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == 131047
    assert failed["errors"][0]["title"] == "Re-engagement message"

    # Once the guest writes, the window is open and the normal sequence follows.
    guest = await sim.post(
        "/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "from": "16505551234", "text": "hello"}
    )
    assert guest.json()["delivered"]
    await sim.post(URL, json=kit.text_send(), headers=kit.auth())
    received = await receiver.wait_for(5)
    assert [item["status"] for item in _statuses(received[2:])] == ["sent", "delivered", "read"]
    sent = (await sim.get("/_sim/sent-messages")).json()["items"]
    assert [item["windowOpen"] for item in sent] == [False, True]
