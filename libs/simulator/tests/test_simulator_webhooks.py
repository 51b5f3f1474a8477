"""Webhook deliveries to a real receiver (uvicorn on a free port) that verifies signatures on its own."""

import json
from typing import Any

import httpx


async def test_guest_message_is_signed_and_delivered(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    response = await sim.post(
        "/_sim/guest-messages",
        json={
            "phoneNumberId": kit.PNID,
            "from": kit.GUEST,
            "name": "José",
            "text": "café 😀 https://x.y/z",
            "timestamp": 1749416383,
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["delivered"] is True
    assert [attempt["status"] for attempt in result["attempts"]] == [200]

    (got,) = await receiver.wait_for(1)
    assert got.signature_ok
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "facebookexternalua"
    assert got.headers["x-hub-signature"].startswith("sha1=")
    assert b'"text":{"body":"caf\\u00e9 \\ud83d\\ude00 https:\\/\\/x.y\\/z"}' in got.body
    assert b'"profile":{"name":"Jos\\u00e9"}' in got.body
    payload = json.loads(got.body)
    value = payload["entry"][0]["changes"][0]["value"]
    assert payload["entry"][0]["id"] == kit.WABA_ID
    assert value["metadata"] == {"display_phone_number": kit.DISPLAY, "phone_number_id": kit.PNID}
    assert value["messages"][0]["id"] == result["wamid"]
    assert value["messages"][0]["timestamp"] == "1749416383"
    assert value["contacts"] == [{"profile": {"name": "José"}, "wa_id": kit.GUEST}]


async def test_general_message_type(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    content = {"latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee"}
    response = await sim.post(
        "/_sim/guest-messages",
        json={
            "phoneNumberId": kit.PNID,
            "from": kit.GUEST,
            "type": "location",
            "content": content,
            "context": {"from": kit.DISPLAY, "id": "wamid.PREV"},
        },
    )
    assert response.json()["delivered"]
    (got,) = await receiver.wait_for(1)
    message = json.loads(got.body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["type"] == "location" and message["location"] == content
    assert message["context"] == {"from": kit.DISPLAY, "id": "wamid.PREV"}


async def test_failed_deliveries_are_retried_with_backoff(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    receiver.plan.extend([500, 503, 200])
    result = (
        await sim.post("/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "text": "hi"})
    ).json()
    assert result["delivered"] is True
    assert [attempt["status"] for attempt in result["attempts"]] == [500, 503, 200]
    assert [attempt["attempt"] for attempt in result["attempts"]] == [1, 2, 3]
    bodies = {item.body for item in await receiver.wait_for(3)}
    assert len(bodies) == 1  # a retry resends the very same bytes
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035  # 0.02 s, then 0.04 s (factor 2)

    delivery_id = result["deliveries"][0]["deliveryId"]
    logged = (await sim.get("/_sim/webhook-attempts", params={"deliveryId": delivery_id})).json()["items"]
    assert [(item["attempt"], item["status"], item["kind"]) for item in logged] == [
        (1, 500, "messages"),
        (2, 503, "messages"),
        (3, 200, "messages"),
    ]


async def test_delivery_gives_up_after_max_attempts(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    receiver.default_status = 204  # only 200 counts as success
    result = (
        await sim.post(
            "/_sim/guest-messages",
            json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "text": "hi", "retry": {"maxAttempts": 3}},
        )
    ).json()
    assert result["delivered"] is False
    assert [attempt["status"] for attempt in result["attempts"]] == [204, 204, 204]


async def test_unreachable_receiver_records_errors(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim, "http://127.0.0.1:9/webhooks/whatsapp")
    result = (
        await sim.post(
            "/_sim/guest-messages",
            json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "text": "hi", "retry": {"maxAttempts": 2}},
        )
    ).json()
    assert result["delivered"] is False
    assert [attempt["status"] for attempt in result["attempts"]] == [None, None]
    assert all(attempt["error"] for attempt in result["attempts"])


async def test_duplicate_deliveries(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    result = (
        await sim.post(
            "/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "from": kit.GUEST, "text": "dup", "deliveries": 3}
        )
    ).json()
    assert result["delivered"] is True
    assert [(attempt["delivery"], attempt["status"]) for attempt in result["attempts"]] == [
        (1, 200),
        (2, 200),
        (3, 200),
    ]
    received = await receiver.wait_for(3)
    assert len({item.body for item in received}) == 1
    assert all(item.signature_ok for item in received)
    wamids = [json.loads(item.body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"] for item in received]
    assert wamids == [result["wamid"]] * 3


async def test_raw_deliveries_and_forged_signatures(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": kit.WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": kit.DISPLAY, "phone_number_id": kit.PNID},
                            "statuses": [
                                {"id": "wamid.OUT", "status": "read", "timestamp": "1", "recipient_id": kit.GUEST}
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    signed = (await sim.post("/_sim/deliveries", json={"payload": payload})).json()
    assert signed["delivered"] is True

    forged = (
        await sim.post(
            "/_sim/deliveries",
            json={"payload": payload, "signature": "sha256=" + "0" * 64, "retry": {"maxAttempts": 1}},
        )
    ).json()
    assert forged["delivered"] is False and forged["attempts"][0]["status"] == 401

    unsigned = (
        await sim.post("/_sim/deliveries", json={"payload": payload, "unsigned": True, "retry": {"maxAttempts": 1}})
    ).json()
    assert unsigned["attempts"][0]["status"] == 401

    raw = '{"object": "whatsapp_business_account", "entry": []}'
    verbatim = (await sim.post("/_sim/deliveries", json={"rawBody": raw, "phoneNumberId": kit.PNID})).json()
    assert verbatim["delivered"] is True
    received = await receiver.wait_for(4)
    assert received[-1].body == raw.encode()
    assert [item.signature_ok for item in received] == [True, False, False, True]
    assert "x-hub-signature-256" not in received[2].headers


async def test_verify_webhook_handshake(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    ok = (
        await sim.post(
            "/_sim/verify-webhook",
            json={"phoneNumberId": kit.PNID, "verifyToken": kit.VERIFY_TOKEN, "challenge": "abc-123"},
        )
    ).json()
    assert ok == {"status": 200, "body": "abc-123", "challenge": "abc-123", "verified": True, "error": None}
    bad = (await sim.post("/_sim/verify-webhook", json={"url": receiver.url, "verifyToken": "wrong"})).json()
    assert bad["status"] == 403 and bad["verified"] is False


async def test_guest_message_errors(sim: httpx.AsyncClient, kit: Any) -> None:
    unknown = await sim.post("/_sim/guest-messages", json={"phoneNumberId": "nope", "from": "1", "text": "x"})
    assert unknown.status_code == 404
    await kit.register(sim)
    no_url = await sim.post("/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "from": "1", "text": "x"})
    assert no_url.status_code == 409
    both = await sim.post(
        "/_sim/guest-messages", json={"phoneNumberId": kit.PNID, "from": "1", "text": "x", "type": "text"}
    )
    assert both.status_code == 422


async def test_guest_message_opens_the_window_at_its_timestamp(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/config", json={"windowEnforcement": "sync"})
    send = "/v21.0/106540352242922/messages"
    old = {"phoneNumberId": kit.PNID, "from": "+1 650-555-1234", "text": "yesterday", "timestamp": "1000000000"}
    assert (await sim.post("/_sim/guest-messages", json=old)).json()["delivered"]
    (got,) = await receiver.wait_for(1)
    message = json.loads(got.body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["from"] == "16505551234"  # digits only, like Meta
    closed = await sim.post(send, json=kit.text_send(), headers=kit.auth())
    assert closed.json()["error"]["code"] == 131047
    now = {"phoneNumberId": kit.PNID, "from": "16505551234", "text": "now"}
    assert (await sim.post("/_sim/guest-messages", json=now)).json()["delivered"]
    assert (await sim.post(send, json=kit.text_send(), headers=kit.auth())).status_code == 200
