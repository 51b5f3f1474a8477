"""Expired access tokens (190/463, reference §5.3) and sends to business-scoped user IDs (reference §12)."""

import re
from typing import Any

import httpx

URL = "/v21.0/106540352242922/messages"
BSUID = "US.13491208655302741918"
EXPIRED = re.compile(
    r"^Error validating access token: Session has expired on [A-Z][a-z]+day, \d\d-[A-Z][a-z]{2}-\d\d "
    r"\d\d:\d\d:\d\d P[DS]T\. The current time is [A-Z][a-z]+day, \d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d P[DS]T\.$"
)


def _assert_expired(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert list(error) == ["message", "type", "code", "error_subcode", "fbtrace_id"]
    assert (error["type"], error["code"], error["error_subcode"]) == ("OAuthException", 190, 463)
    assert EXPIRED.match(error["message"]), error["message"]
    assert response.headers["www-authenticate"] == f'OAuth "Facebook Platform" "invalid_token" "{error["message"]}"'


async def test_an_expired_token_fails_every_graph_call_until_a_new_one(sim_server: Any, kit: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url, timeout=10) as client:
        await kit.register(client)
        await kit.open_window(client)
        form = {"messaging_product": "whatsapp", "type": "image/png"}
        uploaded = await client.post(
            f"/v21.0/{kit.PNID}/media", headers=kit.auth(), data=form, files={"file": ("a.png", b"png", "image/png")}
        )
        media_id = uploaded.json()["id"]
        url = (await client.get(f"/v21.0/{media_id}", headers=kit.auth())).json()["url"]

        expired = await client.post(f"/_sim/numbers/{kit.PNID}/expire-token")
        assert expired.status_code == 200 and expired.json()["tokenExpired"] is True

        _assert_expired(await client.post(URL, json=kit.text_send(), headers=kit.auth()))
        _assert_expired(
            await client.post(
                f"/v21.0/{kit.PNID}/media", headers=kit.auth(), data=form, files={"file": ("a.png", b"x", "image/png")}
            )
        )
        _assert_expired(await client.get(f"/v21.0/{media_id}", headers=kit.auth()))
        _assert_expired(await client.get(url, headers=kit.auth()))
        _assert_expired(await client.get(f"/v21.0/{kit.WABA_ID}/message_templates", headers=kit.auth()))
        _assert_expired(await client.post(URL, json=kit.text_send(), params={"access_token": kit.TOKEN}))
        # re-registering with the same token does not heal it, a new token does (and the old one is unknown)
        await kit.register(client)
        _assert_expired(await client.post(URL, json=kit.text_send(), headers=kit.auth()))
        await kit.register(client, accessToken="EAAG-renewed")
        assert (await client.post(URL, json=kit.text_send(), headers=kit.auth("EAAG-renewed"))).status_code == 200
        old = await client.post(URL, json=kit.text_send(), headers=kit.auth())
        assert old.status_code == 400 and old.json()["error"]["message"].startswith("Invalid OAuth access token")
        assert (await client.post("/_sim/numbers/404/expire-token")).status_code == 404


async def test_send_to_a_bsuid(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await sim.post("/_sim/windows", json={"phoneNumberId": kit.PNID, "userId": BSUID})
    body = {
        "messaging_product": "whatsapp",
        "recipient": BSUID,
        "type": "text",
        "text": {"body": "Olá"},
        "biz_opaque_callback_data": "outbox-7",
    }
    response = await sim.post(URL, json=body, headers=kit.auth())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    wamid = answer["messages"][0]["id"]
    statuses = kit.statuses(await receiver.wait_for(3))
    assert [item["status"] for item in statuses] == ["sent", "delivered", "read"]
    for item in statuses:
        assert item["id"] == wamid and item["recipient_user_id"] == BSUID and "recipient_id" not in item
        assert item["biz_opaque_callback_data"] == "outbox-7"
    assert list(statuses[0])[:4] == ["id", "status", "timestamp", "recipient_user_id"]
    sent = (await sim.get("/_sim/sent-messages", params={"to": BSUID})).json()["items"]
    assert [(item["userId"], item["waId"]) for item in sent] == [(BSUID, None)]


async def test_to_wins_over_recipient_and_bad_bsuids(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await kit.open_window(sim)
    both = {**kit.text_send(to="+16505551234"), "recipient": BSUID}
    response = await sim.post(URL, json=both, headers=kit.auth())
    assert response.json()["contacts"] == [{"input": "+16505551234", "wa_id": kit.GUEST}]
    bad = {"messaging_product": "whatsapp", "recipient": "not a bsuid", "type": "text", "text": {"body": "x"}}
    error = (await sim.post(URL, json=bad, headers=kit.auth())).json()["error"]
    assert error["code"] == 100 and "recipient" in error["error_data"]["details"]
    neither = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}
    assert (await sim.post(URL, json=neither, headers=kit.auth())).json()["error"]["message"] == (
        "(#100) The parameter to is required."
    )


async def test_authentication_templates_cannot_go_to_a_bsuid(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await sim.post(
        "/_sim/templates",
        json={
            "wabaId": kit.WABA_ID,
            "name": "otp",
            "language": "en_US",
            "category": "AUTHENTICATION",
            "components": [{"type": "BODY", "text": "{{1}} is your code."}],
        },
    )
    template = {
        "name": "otp",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "123456"}]}],
    }
    body = {"messaging_product": "whatsapp", "recipient": BSUID, "type": "template", "template": template}
    response = await sim.post(URL, json=body, headers=kit.auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 131062
    assert error["message"] == "(#131062) Business-scoped user ID not supported"
    assert (
        error["error_data"]["details"] == "This message type is not supported for business-scoped user ID recipients."
    )
    to_phone = {**body, "to": kit.GUEST}
    del to_phone["recipient"]
    assert (await sim.post(URL, json=to_phone, headers=kit.auth())).status_code == 200
