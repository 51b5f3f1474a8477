"""Templates: the per-WABA registry, Graph's listing, lifecycle webhooks, and send validation (reference §5.4)."""

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from eva_simulator.app import create_app
from eva_simulator.client import SimulatorClient
from eva_simulator.server import serve_in_background

URL = "/v21.0/106540352242922/messages"
MARKETING_URL = "/v21.0/106540352242922/marketing_messages"

BOOKING = {
    "name": "booking_confirmed",
    "language": "pt_BR",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Olá {{1}}, a sua reserva {{2}} está confirmada."},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Alterar"},
                {"type": "URL", "text": "Ver", "url": "https://hotel.example/r/{{1}}"},
            ],
        },
    ],
}


def _send(name: str, language: str, components: list[dict[str, Any]] | None = None, to: str = "16505551234") -> Any:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components is not None:
        template["components"] = components
    return {"messaging_product": "whatsapp", "to": to, "type": "template", "template": template}


def _booking_components(**changes: Any) -> list[dict[str, Any]]:
    components = {
        "header": {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]},
        "body": {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "R-12"}],
        },
        "button": {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "R-12"}]},
    }
    components.update(changes)
    return [value for value in components.values() if value is not None]


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_every_new_waba_has_hello_world(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await kit.register(sim, phoneNumberId="222", accessToken="other", wabaId=kit.WABA_ID)  # same WABA: no second
    items = (await sim.get("/_sim/templates", params={"wabaId": kit.WABA_ID})).json()["items"]
    assert [(item["name"], item["language"]) for item in items] == [("hello_world", "en_US")]
    (hello,) = items
    assert (hello["category"], hello["status"], hello["quality"], hello["parameterFormat"]) == (
        "UTILITY",
        "APPROVED",
        "GREEN",
        "POSITIONAL",
    )
    assert hello["id"].isdigit() and len(hello["id"]) >= 15
    assert hello["components"] == [
        {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
        {
            "type": "BODY",
            "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message "
            "notification from the Cloud API, hosted by Meta.",
        },
        {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
    ]
    response = await sim.post(URL, json=_send("hello_world", "en_US"), headers=kit.auth())
    assert response.status_code == 200 and response.json()["messages"][0]["message_status"] == "accepted"


async def test_graph_listing_pages_and_permissions(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await kit.register(sim, phoneNumberId="333", accessToken="tok-other-waba", wabaId="999888777666555")
    for index in range(4):
        created = await sim.post(
            "/_sim/templates",
            json={
                "wabaId": kit.WABA_ID,
                "name": f"t{index}",
                "language": "en_US",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Hi {{1}}"}],
                **({"status": "REJECTED", "rejectedReason": "INVALID_FORMAT"} if index == 3 else {}),
            },
        )
        assert created.status_code == 200, created.text
    path = f"/v21.0/{kit.WABA_ID}/message_templates"
    first = await sim.get(path, params={"limit": 2}, headers=kit.auth())
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["name"] for item in page["data"]] == ["hello_world", "t0"]
    hello = page["data"][0]
    assert list(hello) == [
        "name",
        "parameter_format",
        "components",
        "language",
        "status",
        "category",
        "id",
        "quality_score",
    ]
    assert hello["quality_score"] == {"score": "GREEN"} and hello["parameter_format"] == "POSITIONAL"
    assert set(page["paging"]["cursors"]) == {"before", "after"}
    next_url = page["paging"]["next"]
    query = parse_qs(urlsplit(next_url).query)
    assert query["after"] == [page["paging"]["cursors"]["after"]] and query["limit"] == ["2"]
    assert next_url.startswith("http://graph.test/v21.0/")
    second = (await sim.get(next_url, headers=kit.auth())).json()
    assert [item["name"] for item in second["data"]] == ["t1", "t2"]
    third = (await sim.get(second["paging"]["next"], headers=kit.auth())).json()
    assert [item["name"] for item in third["data"]] == ["t3"] and "next" not in third["paging"]
    assert third["data"][0]["rejected_reason"] == "INVALID_FORMAT"
    everything = (await sim.get(path, headers=kit.auth())).json()
    assert len(everything["data"]) == 5 and "next" not in everything["paging"]
    assert len((await sim.get(path, params={"limit": 500}, headers=kit.auth())).json()["data"]) == 5

    other_waba = await sim.get(path, headers=kit.auth("tok-other-waba"))
    error = _error(other_waba)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith(f"Unsupported get request. Object with ID '{kit.WABA_ID}'")
    unknown = _error(await sim.get("/v21.0/404404/message_templates", headers=kit.auth()))
    assert (unknown["code"], unknown["error_subcode"]) == (100, 33)
    assert (await sim.get(path)).status_code == 401


async def test_send_validation(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    assert (await sim.post("/_sim/templates", json={"wabaId": kit.WABA_ID, **BOOKING})).status_code == 200
    ok = await sim.post(URL, json=_send("booking_confirmed", "pt_BR", _booking_components()), headers=kit.auth())
    assert ok.status_code == 200, ok.text

    missing = _error(await sim.post(URL, json=_send("booking_confirmed", "en_US"), headers=kit.auth()))
    assert missing["message"] == "(#132001) Template name does not exist in the translation"
    assert missing["error_data"]["details"] == "template name (booking_confirmed) does not exist in en_US"
    assert missing["error_subcode"] == 2494073

    no_body = _error(
        await sim.post(
            URL, json=_send("booking_confirmed", "pt_BR", _booking_components(body=None)), headers=kit.auth()
        )
    )
    assert no_body["code"] == 132000
    assert no_body["message"] == "(#132000) Number of parameters does not match the expected number of params"
    assert no_body["error_data"]["details"] == (
        "body: number of localizable_params (0) does not match the expected number of params (2)"
    )
    hello_with_param = _send("hello_world", "en_US", [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}])
    assert _error(await sim.post(URL, json=hello_with_param, headers=kit.auth()))["code"] == 132000

    no_header = _send("booking_confirmed", "pt_BR", _booking_components(header=None))
    error = _error(await sim.post(URL, json=no_header, headers=kit.auth()))
    assert error["code"] == 132012
    assert error["message"] == "(#132012) Parameter format does not match format in the created template"
    video_header = {"type": "header", "parameters": [{"type": "video", "video": {"link": "https://x/v.mp4"}}]}
    wrong_kind = _send("booking_confirmed", "pt_BR", _booking_components(header=video_header))
    assert _error(await sim.post(URL, json=wrong_kind, headers=kit.auth()))["code"] == 132012
    foreign_media = {"type": "header", "parameters": [{"type": "image", "image": {"id": "1234567890123456"}}]}
    foreign = _send("booking_confirmed", "pt_BR", _booking_components(header=foreign_media))
    error = _error(await sim.post(URL, json=foreign, headers=kit.auth()))
    assert error["code"] == 100 and "1234567890123456" in error["error_data"]["details"]

    bad_button = {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": []}
    error = _error(
        await sim.post(
            URL, json=_send("booking_confirmed", "pt_BR", _booking_components(button=bad_button)), headers=kit.auth()
        )
    )
    assert error["code"] == 131009 and "index 1" in error["error_data"]["details"]
    out_of_range = {"type": "button", "sub_type": "quick_reply", "index": "5", "parameters": []}
    bad = _send("booking_confirmed", "pt_BR", _booking_components(button=out_of_range))
    assert _error(await sim.post(URL, json=bad, headers=kit.auth()))["code"] == 131009
    quick = {
        "type": "button",
        "sub_type": "quick_reply",
        "index": 0,
        "parameters": [{"type": "payload", "payload": "a"}],
    }
    good = _send("booking_confirmed", "pt_BR", _booking_components(button=quick))
    assert (await sim.post(URL, json=good, headers=kit.auth())).status_code == 200


async def test_named_parameters_and_text_headers(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await sim.post(
        "/_sim/templates",
        json={
            "wabaId": kit.WABA_ID,
            "name": "pre_invite",
            "language": "en_US",
            "category": "MARKETING",
            "parameterFormat": "NAMED",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hello {{guest}}"},
                {"type": "BODY", "text": "Dear {{name}}, see you on {{date}}."},
            ],
        },
    )
    header = {"type": "header", "parameters": [{"type": "text", "text": "Ana", "parameter_name": "guest"}]}

    def body(*names: str) -> dict[str, Any]:
        return {
            "type": "body",
            "parameters": [{"type": "text", "text": "v", "parameter_name": name} for name in names],
        }

    ok = await sim.post(URL, json=_send("pre_invite", "en_US", [header, body("date", "name")]), headers=kit.auth())
    assert ok.status_code == 200, ok.text
    wrong_name = _send("pre_invite", "en_US", [header, body("name", "when")])
    assert _error(await sim.post(URL, json=wrong_name, headers=kit.auth()))["code"] == 132000
    positional = _send(
        "pre_invite", "en_US", [header, {"type": "body", "parameters": [{"type": "text", "text": "a"}] * 2}]
    )
    assert _error(await sim.post(URL, json=positional, headers=kit.auth()))["code"] == 132000
    no_header = _send("pre_invite", "en_US", [body("name", "date")])
    assert _error(await sim.post(URL, json=no_header, headers=kit.auth()))["code"] == 132012


async def test_status_gates_and_marketing_messages(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    created = (
        await sim.post(
            "/_sim/templates",
            json={
                "wabaId": kit.WABA_ID,
                "name": "promo",
                "language": "en",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "20% off this weekend"}],
            },
        )
    ).json()
    for status, code in (("PAUSED", 132015), ("DISABLED", 132016), ("PENDING", 132001), ("REJECTED", 132001)):
        await sim.patch(f"/_sim/templates/{created['id']}", json={"status": status, "webhook": False})
        assert _error(await sim.post(URL, json=_send("promo", "en"), headers=kit.auth()))["code"] == code
    assert receiver.received == []
    await sim.patch(f"/_sim/templates/{created['id']}", json={"status": "APPROVED", "webhook": False})

    response = await sim.post(MARKETING_URL, json=_send("promo", "en"), headers=kit.auth())
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["messaging_product", "contacts", "messages"]
    assert response.json()["messages"][0]["message_status"] == "accepted"
    assert _error(await sim.post(MARKETING_URL, json=_send("nope", "en"), headers=kit.auth()))["code"] == 132001
    assert _error(await sim.post(MARKETING_URL, json=kit.text_send(), headers=kit.auth()))["code"] == 100
    await sim.post(URL, json=_send("hello_world", "en_US"), headers=kit.auth())

    sent = (await sim.get("/_sim/sent-messages")).json()["items"]
    assert [(item["endpoint"], item["templateCategory"]) for item in sent] == [
        ("marketing_messages", "MARKETING"),
        ("messages", "UTILITY"),
    ]
    statuses = kit.statuses(await receiver.wait_for(6))
    priced = {(item["id"], item["status"]): item.get("pricing") for item in statuses}
    assert priced[(sent[0]["wamid"], "sent")] == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }
    assert priced[(sent[1]["wamid"], "delivered")]["category"] == "utility"  # type: ignore[index]
    assert priced[(sent[1]["wamid"], "read")] is None


async def test_patch_delivers_template_webhooks(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await kit.register(sim, phoneNumberId="222", accessToken="t2", webhookUrl=receiver.url)  # same URL and secret
    created = (
        await sim.post(
            "/_sim/templates",
            json={
                "wabaId": kit.WABA_ID,
                "name": "order_confirmation",
                "language": "en_US",
                "category": "UTILITY",
                "status": "PENDING",
                "components": [{"type": "BODY", "text": "Order {{1}} confirmed"}],
            },
        )
    ).json()
    template_id = created["id"]
    updated = await sim.patch(
        f"/_sim/templates/{template_id}", json={"status": "REJECTED", "rejectedReason": "INVALID_FORMAT"}
    )
    assert updated.status_code == 200 and updated.json()["status"] == "REJECTED"
    assert len(updated.json()["webhooks"]) == 1 and updated.json()["webhooks"][0]["delivered"]
    (status_change,) = kit.changes(await receiver.wait_for(1))
    assert status_change == {
        "value": {
            "event": "REJECTED",
            "message_template_id": int(template_id),
            "message_template_name": "order_confirmation",
            "message_template_language": "en_US",
            "reason": "INVALID_FORMAT",
            "message_template_category": "UTILITY",
        },
        "field": "message_template_status_update",
    }
    envelope = json.loads(receiver.received[0].body)
    assert envelope["object"] == "whatsapp_business_account"
    assert envelope["entry"][0]["id"] == kit.WABA_ID and isinstance(envelope["entry"][0]["time"], int)

    await sim.patch(f"/_sim/templates/{template_id}", json={"status": "APPROVED", "rejectedReason": "NONE"})
    await sim.patch(f"/_sim/templates/{template_id}", json={"category": "MARKETING", "quality": "YELLOW"})
    changes = kit.changes(await receiver.wait_for(4))
    assert [change["field"] for change in changes] == [
        "message_template_status_update",
        "message_template_status_update",
        "template_category_update",
        "message_template_quality_update",
    ]
    assert changes[1]["value"]["event"] == "APPROVED" and changes[1]["value"]["reason"] == "NONE"
    assert changes[2]["value"] == {
        "message_template_id": int(template_id),
        "message_template_name": "order_confirmation",
        "message_template_language": "en_US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    }
    assert changes[3]["value"] == {
        "previous_quality_score": "GREEN",
        "new_quality_score": "YELLOW",
        "message_template_id": int(template_id),
        "message_template_name": "order_confirmation",
        "message_template_language": "en_US",
    }
    quiet = await sim.patch(f"/_sim/templates/{template_id}", json={"status": "PAUSED", "webhook": False})
    assert quiet.json()["webhooks"] == []
    assert (await sim.patch("/_sim/templates/404", json={"status": "PAUSED"})).status_code == 404
    attempts = (await sim.get("/_sim/webhook-attempts", params={"kind": "template"})).json()["items"]
    assert len(attempts) == 4


async def test_seeded_templates_upserts_and_the_client(kit: Any) -> None:
    seed = {"wabaId": kit.WABA_ID, "id": "123456789012345", **BOOKING}
    app = create_app(kit.settings(templates=[seed]))
    async with serve_in_background(app) as server, SimulatorClient(server.url) as client:
        await client.register_number(
            phone_number_id=kit.PNID,
            waba_id=kit.WABA_ID,
            display_phone_number=kit.DISPLAY,
            access_token=kit.TOKEN,
            app_secret=kit.APP_SECRET,
        )
        names = {(item["name"], item["id"]) for item in await client.list_templates(waba_id=kit.WABA_ID)}
        assert ("booking_confirmed", "123456789012345") in names and len(names) == 2
        replaced = await client.create_template(
            waba_id=kit.WABA_ID, name="booking_confirmed", language="pt_BR", category="MARKETING", components=[]
        )
        assert replaced["id"] == "123456789012345" and replaced["category"] == "MARKETING"
        assert len(await client.list_templates(waba_id=kit.WABA_ID)) == 2
        updated = await client.update_template("123456789012345", status="PAUSED", webhook=False)
        assert updated["status"] == "PAUSED"
        await client.reset(templates=True)
        again = {item["name"]: item for item in await client.list_templates(waba_id=kit.WABA_ID)}
        assert again["booking_confirmed"]["status"] == "APPROVED" and "hello_world" in again
