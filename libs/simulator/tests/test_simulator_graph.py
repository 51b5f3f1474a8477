"""The fake Graph API over ASGI: success and error shapes, bearer checks, faults (reference §5, §10)."""

from typing import Any

import httpx
from fastapi import FastAPI

URL = "/v21.0/106540352242922/messages"


async def _send(sim: httpx.AsyncClient, kit: Any, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", kit.auth())
    return await sim.post(kwargs.pop("url", URL), json=body, headers=headers, **kwargs)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["fbtrace_id"], str) and len(error["fbtrace_id"]) == 23
    return error


async def test_text_send_success_shape(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    response = await _send(sim, kit, kit.text_send(to="+1 650-555-1234"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["facebook-api-version"] == "v21.0"
    body = response.json()
    assert list(body) == ["messaging_product", "contacts", "messages"]
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 650-555-1234", "wa_id": "16505551234"}]
    assert len(body["messages"]) == 1 and list(body["messages"][0]) == ["id"]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")

    sent = (await sim.get("/_sim/sent-messages", params={"phoneNumberId": kit.PNID})).json()["items"]
    assert [(item["wamid"], item["waId"], item["type"]) for item in sent] == [(wamid, "16505551234", "text")]
    assert sent[0]["request"]["text"]["body"] == "Hello from the hotel"


async def test_template_send_is_accepted(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    body = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    response = await _send(sim, kit, body)
    assert response.status_code == 200
    assert response.json()["messages"][0]["message_status"] == "accepted"


async def test_mark_as_read_answers_success(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    body = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
        "typing_indicator": {"type": "text"},
    }
    response = await _send(sim, kit, body)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    receipts = (await sim.get("/_sim/read-receipts")).json()["items"]
    assert receipts[0]["messageId"] == "wamid.IN1" and receipts[0]["typingIndicator"] is True
    assert (await sim.get("/_sim/sent-messages")).json()["items"] == []


async def test_missing_token_is_401_code_190(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    response = await _send(sim, kit, kit.text_send(), headers={})
    assert response.status_code == 401
    error = _error(response)
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_wrong_token_is_400_code_190(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    for headers in (kit.auth("not-a-token"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = await _send(sim, kit, kit.text_send(), headers=headers)
        assert response.status_code == 400
        error = _error(response)
        assert (error["code"], error["type"]) == (190, "OAuthException")
        assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


async def test_access_token_query_parameter_is_accepted(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    response = await _send(sim, kit, kit.text_send(), headers={}, params={"access_token": kit.TOKEN})
    assert response.status_code == 200


async def test_unknown_phone_number_id_is_graph_method_exception(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    response = await _send(sim, kit, kit.text_send(), url="/v21.0/999999/messages")
    assert response.status_code == 400
    error = _error(response)
    assert list(error) == ["message", "type", "code", "error_subcode", "fbtrace_id"]
    assert (error["type"], error["code"], error["error_subcode"]) == ("GraphMethodException", 100, 33)
    assert error["message"].startswith("Unsupported post request. Object with ID '999999' does not exist")
    assert b"https:\\/\\/developers.facebook.com\\/docs\\/graph-api" in response.content  # Meta's escaping


async def test_token_of_another_number_cannot_send(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await kit.register(sim, phoneNumberId="222", accessToken="other-token")
    response = await _send(sim, kit, kit.text_send(), headers=kit.auth("other-token"))
    assert response.status_code == 400
    assert _error(response)["error_subcode"] == 33


async def test_messaging_product_is_required(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    wrong = {**kit.text_send(), "messaging_product": "instagram"}
    response = await _send(sim, kit, wrong)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == 100 and error["message"] == "(#100) Invalid parameter"
    assert list(error) == ["message", "type", "code", "error_data", "fbtrace_id"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "messaging_product" in error["error_data"]["details"]

    missing = kit.text_send()
    del missing["messaging_product"]
    response = await _send(sim, kit, missing)
    assert response.status_code == 400
    assert _error(response)["message"] == "(#100) The parameter messaging_product is required."


async def test_text_body_limit(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    assert (await _send(sim, kit, kit.text_send(body="x" * 4096))).status_code == 200
    response = await _send(sim, kit, kit.text_send(body="x" * 4097))
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == 100
    assert error["error_data"]["details"] == "Param text['body'] must be at most 4096 characters long."


async def test_other_validation_errors(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    buttons = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]
    interactive = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": buttons}},
    }
    assert (await _send(sim, kit, interactive)).status_code == 400
    interactive["interactive"]["action"]["buttons"] = buttons[:3]
    assert (await _send(sim, kit, interactive)).status_code == 200
    no_to = kit.text_send()
    del no_to["to"]
    assert _error(await _send(sim, kit, no_to))["message"] == "(#100) The parameter to is required."
    to_self = await _send(sim, kit, kit.text_send(to="+" + kit.DISPLAY))
    assert _error(to_self)["code"] == 131021
    image = {"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {"caption": "no media"}}
    assert _error(await _send(sim, kit, image))["code"] == 100
    bad_json = await sim.post(URL, content=b"{not json", headers=kit.auth())
    assert bad_json.status_code == 400 and _error(bad_json)["code"] == 100


async def test_fault_injection_then_recovery(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    fault = await sim.post("/_sim/faults", json={"phoneNumberId": kit.PNID, "code": 130429, "times": 2})
    assert fault.status_code == 200
    for _ in range(2):
        response = await _send(sim, kit, kit.text_send())
        assert response.status_code == 400
        error = _error(response)
        assert list(error) == ["message", "type", "code", "error_data", "error_subcode", "fbtrace_id"]
        assert error["message"] == "(#130429) Rate limit hit"
        assert (error["code"], error["error_subcode"], error["type"]) == (130429, 2494055, "OAuthException")
        assert error["error_data"] == {
            "messaging_product": "whatsapp",
            "details": "Cloud API message throughput has been reached.",
        }
    assert (await _send(sim, kit, kit.text_send())).status_code == 200
    assert (await sim.get("/_sim/faults")).json()["items"] == []
    assert len((await sim.get("/_sim/sent-messages")).json()["items"]) == 1


async def test_transient_faults_are_5xx_and_overridable(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await sim.post("/_sim/faults", json={"code": 131000})  # "*": any number
    await sim.post(
        "/_sim/faults", json={"phoneNumberId": kit.PNID, "code": 131056, "httpStatus": 429, "details": "slow down"}
    )
    first = await _send(sim, kit, kit.text_send())  # number-specific faults go first
    assert first.status_code == 429 and _error(first)["error_data"]["details"] == "slow down"
    second = await _send(sim, kit, kit.text_send())
    assert second.status_code == 500 and _error(second)["code"] == 131000
    # Read receipts never consume faults.
    await sim.post("/_sim/faults", json={"code": 133004})
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    assert (await _send(sim, kit, read)).status_code == 200
    assert (await _send(sim, kit, kit.text_send())).status_code == 503


async def test_sync_window_enforcement(sim: httpx.AsyncClient, sim_app: FastAPI, kit: Any) -> None:
    await kit.register(sim)
    await sim.post("/_sim/config", json={"windowEnforcement": "sync"})
    closed = await _send(sim, kit, kit.text_send())
    assert closed.status_code == 400 and _error(closed)["code"] == 131047
    template = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    assert (await _send(sim, kit, template)).status_code == 200
    sim_app.state.simulator.state.touch_window(kit.PNID, "16505551234")
    assert (await _send(sim, kit, kit.text_send())).status_code == 200


async def test_admin_numbers_hide_secrets_and_reset(sim: httpx.AsyncClient, kit: Any) -> None:
    created = await kit.register(sim)
    assert created == {
        "phoneNumberId": kit.PNID,
        "wabaId": kit.WABA_ID,
        "displayPhoneNumber": kit.DISPLAY,
        "webhookUrl": None,
        "coexistence": False,
        "throughputMps": 80,
        "tokenExpired": False,
    }
    updated = await sim.post("/_sim/numbers", json={"phoneNumberId": kit.PNID, "webhookUrl": "http://x/y"})
    assert updated.json()["webhookUrl"] == "http://x/y"
    incomplete = await sim.post("/_sim/numbers", json={"phoneNumberId": "333"})
    assert incomplete.status_code == 422
    listed = (await sim.get("/_sim/numbers")).json()["items"]
    assert len(listed) == 1 and "accessToken" not in listed[0] and "appSecret" not in listed[0]
    await _send(sim, kit, kit.text_send())
    await sim.post("/_sim/reset")
    assert (await sim.get("/_sim/sent-messages")).json()["items"] == []
    assert len((await sim.get("/_sim/numbers")).json()["items"]) == 1
    await sim.post("/_sim/reset", params={"numbers": "true"})
    assert (await sim.get("/_sim/numbers")).json()["items"] == []
    assert (await sim.get("/healthz")).json() == {"status": "ok"}
    assert (await sim.get("/readyz")).status_code == 200
