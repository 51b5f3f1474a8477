"""Outbound behaviours on request: status rules, slow accepts (a send whose answer is lost), read receipts and
typing indicators, coexistence echoes, and media checks on upload and send (reference §5, §6, §12)."""

import asyncio
import json
from typing import Any

import httpx
from eva_simulator.app import create_app
from eva_simulator.client import SimulatorClient
from eva_simulator.server import serve_in_background

URL = "/v21.0/106540352242922/messages"
MB = 1024 * 1024


async def _send(sim: httpx.AsyncClient, kit: Any, body: dict[str, Any] | None = None, **kwargs: Any) -> str:
    response = await sim.post(URL, json=body or kit.text_send(), headers=kit.auth(), **kwargs)
    assert response.status_code == 200, response.text
    wamid: str = response.json()["messages"][0]["id"]
    return wamid


async def test_status_rule_fail_with_after_sent(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await kit.open_window(sim)
    rule = await sim.post(
        "/_sim/status-rules",
        json={"phoneNumberId": kit.PNID, "to": kit.GUEST, "failWith": {"code": 131026}},
    )
    assert rule.status_code == 200 and rule.json()["remaining"] == 1
    wamid = await _send(sim, kit, {**kit.text_send(), "biz_opaque_callback_data": "o-1"})
    sent, failed = kit.statuses(await receiver.wait_for(2))
    assert (sent["status"], failed["status"]) == ("sent", "failed") and sent["id"] == failed["id"] == wamid
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert failed["errors"][0]["code"] == 131026 and failed["errors"][0]["title"] == "Message Undeliverable"
    assert failed["biz_opaque_callback_data"] == "o-1"
    assert (await sim.get("/_sim/status-rules")).json()["items"] == []  # times: 1 was used up

    await sim.post(
        "/_sim/status-rules",
        json={"failWith": {"code": 131049, "title": "Custom title", "details": "Custom details"}},
    )
    await _send(sim, kit)
    failed = kit.statuses(await receiver.wait_for(4))[3]
    assert failed["errors"][0] == {
        "code": 131049,
        "title": "Custom title",
        "message": "Custom title",
        "error_data": {"details": "Custom details"},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


async def test_status_rules_skip_duplicate_reorder_and_scope(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await kit.open_window(sim)
    await kit.open_window(sim, "16505550000")
    await sim.post("/_sim/status-rules", json={"to": "16505550000", "skip": ["delivered"], "times": 2})
    await _send(sim, kit)  # another recipient: the rule does not apply
    assert [item["status"] for item in kit.statuses(await receiver.wait_for(3))] == ["sent", "delivered", "read"]
    await _send(sim, kit, kit.text_send(to="16505550000"))
    statuses = kit.statuses(await receiver.wait_for(5))[3:]
    assert [item["status"] for item in statuses] == ["sent", "read"]
    assert "pricing" in statuses[1]  # read is the first after sent, so it carries pricing
    assert (await sim.get("/_sim/status-rules")).json()["items"][0]["remaining"] == 1
    assert (await sim.delete("/_sim/status-rules")).json() == {"items": []}

    receiver.received.clear()
    await sim.post("/_sim/status-rules", json={"phoneNumberId": kit.PNID, "duplicate": True, "sequence": ["sent"]})
    wamid = await _send(sim, kit)
    first, second = await receiver.wait_for(2)
    assert (
        first.body == second.body
        and json.loads(first.body)["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] == wamid
    )
    await asyncio.sleep(0.05)
    assert len(receiver.received) == 2

    receiver.received.clear()
    await sim.post("/_sim/status-rules", json={"reorder": True})
    await _send(sim, kit)
    assert [item["status"] for item in kit.statuses(await receiver.wait_for(3))] == ["read", "delivered", "sent"]


async def test_reactions_only_get_sent_and_ignore_rules(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url)
    await kit.open_window(sim)
    await sim.post("/_sim/status-rules", json={"failWith": {"code": 131026}})
    reaction = {
        "messaging_product": "whatsapp",
        "to": kit.GUEST,
        "type": "reaction",
        "reaction": {"message_id": "wamid.IN", "emoji": "👍"},
    }
    await _send(sim, kit, reaction)
    (sent,) = kit.statuses(await receiver.wait_for(1))
    assert sent["status"] == "sent"
    await asyncio.sleep(0.1)
    assert len(receiver.received) == 1
    assert len((await sim.get("/_sim/status-rules")).json()["items"]) == 1


async def test_slow_accept_sends_even_when_the_client_gives_up(receiver: Any, kit: Any) -> None:
    async with serve_in_background(create_app(kit.settings())) as server:
        async with SimulatorClient(server.url) as control, httpx.AsyncClient(base_url=server.url) as client:
            await kit.register(client, receiver.url)
            await control.open_window(phone_number_id=kit.PNID, wa_id=kit.GUEST)
            fault = await control.add_fault(phone_number_id=kit.PNID, kind="slow_accept", delay_seconds=1.0)
            assert (fault["kind"], fault["delaySeconds"], fault["code"]) == ("slow_accept", 1.0, None)
            body = {**kit.text_send(), "biz_opaque_callback_data": "outbox-99"}
            try:
                await client.post(URL, json=body, headers=kit.auth(), timeout=0.3)
                raise AssertionError("the answer should have come too late")
            except httpx.ReadTimeout:
                pass
            (sent,) = await control.sent_messages(phone_number_id=kit.PNID)
            statuses = kit.statuses(await receiver.wait_for(3))
            assert {item["biz_opaque_callback_data"] for item in statuses} == {"outbox-99"}
            assert {item["id"] for item in statuses} == {sent["wamid"]}

            # with patience the answer arrives, carrying the wamid
            await control.add_fault(phone_number_id=kit.PNID, kind="slow_accept", delay_seconds=0.3)
            late = await client.post(URL, json=kit.text_send(), headers=kit.auth(), timeout=5)
            assert late.status_code == 200
            assert late.json()["messages"][0]["id"] == (await control.sent_messages())[-1]["wamid"]
            assert (await client.post("/_sim/faults", json={"kind": "error"})).status_code == 422


async def test_read_receipts_and_typing_indicators(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgA="}
    assert (await sim.post(URL, json=read, headers=kit.auth())).json() == {"success": True}
    typing = {**read, "typing_indicator": {"type": "text"}}
    assert (await sim.post(URL, json=typing, headers=kit.auth())).json() == {"success": True}
    receipts = (await sim.get("/_sim/read-receipts", params={"phoneNumberId": kit.PNID})).json()["items"]
    assert [item["typingIndicator"] for item in receipts] == [False, True]

    for bad in (
        {**read, "message_id": "ABGGFlA5Fpa"},
        {**read, "message_id": 42},
        {**read, "typing_indicator": {"type": "audio"}},
        {**read, "typing_indicator": "text"},
    ):
        response = await sim.post(URL, json=bad, headers=kit.auth())
        assert response.status_code == 400 and response.json()["error"]["code"] == 100, bad
    assert len((await sim.get("/_sim/read-receipts")).json()["items"]) == 2
    throughput = (await sim.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()
    assert throughput["received"] == 6


async def test_coexistence_echo(sim: httpx.AsyncClient, receiver: Any, kit: Any) -> None:
    await kit.register(sim, receiver.url, coexistence=True)
    await sim.post("/_sim/config", json={"windowEnforcement": "sync"})
    answer = await sim.post(
        "/_sim/echoes",
        json={
            "phoneNumberId": kit.PNID,
            "to": "+1 650-555-1234",
            "text": "Sent from the phone",
            "timestamp": 1750000000,
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["delivered"] is True and result["wamid"].startswith("wamid.")
    (change,) = kit.changes(await receiver.wait_for(1))
    assert change["field"] == "smb_message_echoes"
    assert change["value"] == {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": kit.DISPLAY, "phone_number_id": kit.PNID},
        "message_echoes": [
            {
                "from": kit.DISPLAY,
                "to": kit.GUEST,
                "id": result["wamid"],
                "timestamp": "1750000000",
                "type": "text",
                "text": {"body": "Sent from the phone"},
            }
        ],
    }
    assert result["payload"]["entry"][0]["changes"][0] == change
    # an echo does not open the customer-service window
    response = await sim.post(URL, json=kit.text_send(), headers=kit.auth())
    assert response.status_code == 400 and response.json()["error"]["code"] == 131047

    image = await sim.post(
        "/_sim/echoes",
        json={
            "phoneNumberId": kit.PNID,
            "to": kit.GUEST,
            "type": "image",
            "content": {"mime_type": "image/jpeg", "sha256": "abc=", "id": "1234"},
            "id": "wamid.ECHO1",
        },
    )
    echoed = image.json()["payload"]["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    assert echoed["id"] == "wamid.ECHO1" and echoed["image"]["id"] == "1234"
    assert (await sim.post("/_sim/echoes", json={"phoneNumberId": kit.PNID, "to": kit.GUEST})).status_code == 422


async def _upload(client: httpx.AsyncClient, kit: Any, mime: str, size: int, name: str = "f") -> httpx.Response:
    return await client.post(
        f"/v21.0/{kit.PNID}/media",
        headers=kit.auth(),
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": (name, b"\0" * size, mime)},
    )


async def test_upload_enforces_meta_types_and_sizes(sim_server: Any, kit: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url, timeout=30) as client:
        await kit.register(client)
        accepted = [
            ("image/jpeg", 5 * MB),
            ("image/png", 10),
            ("audio/ogg; codecs=opus", 10),
            ("audio/mpeg", 10),
            ("video/3gpp", 10),
            ("application/pdf", 10),
            ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", 10),
            ("application/vnd.ms-excel", 10),
            ("image/webp", 500 * 1024),
        ]
        for mime, size in accepted:
            response = await _upload(client, kit, mime, size)
            assert response.status_code == 200, (mime, response.text)
        refused = [
            ("image/gif", 10),
            ("image/jpeg", 5 * MB + 1),
            ("image/webp", 500 * 1024 + 1),
            ("video/quicktime", 10),
            ("audio/wav", 10),
            ("application/zip", 10),
        ]
        for mime, size in refused:
            response = await _upload(client, kit, mime, size)
            assert response.status_code == 400, (mime, size)
            error = response.json()["error"]
            assert error["code"] == 100 and error["message"] == "(#100) Invalid parameter", (mime, error)


async def test_media_sends_name_the_numbers_own_media_of_a_fitting_kind(
    sim_server: Any, receiver: Any, kit: Any
) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url, timeout=30) as client:
        await kit.register(client, receiver.url)
        await kit.register(client, phoneNumberId="222", accessToken="t2", wabaId=kit.WABA_ID)
        await kit.open_window(client)
        image_id = (await _upload(client, kit, "image/jpeg", 100)).json()["id"]
        pdf_id = (await _upload(client, kit, "application/pdf", 100)).json()["id"]
        other_id = (
            await client.post(
                "/v21.0/222/media",
                headers=kit.auth("t2"),
                data={"messaging_product": "whatsapp", "type": "image/png"},
                files={"file": ("x.png", b"png", "image/png")},
            )
        ).json()["id"]

        def media(kind: str, media_id: str) -> dict[str, Any]:
            return {"messaging_product": "whatsapp", "to": kit.GUEST, "type": kind, kind: {"id": media_id}}

        for media_id in ("999999999", other_id):
            response = await client.post(URL, json=media("image", media_id), headers=kit.auth())
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["code"] == 100 and media_id in error["error_data"]["details"]

        image_ok = await _send(client, kit, media("image", image_id))
        image_as_document = await _send(client, kit, media("document", image_id))
        link = {"messaging_product": "whatsapp", "to": kit.GUEST, "type": "image", "image": {"link": "https://x/y"}}
        await _send(client, kit, link)
        document_as_image = await _send(client, kit, media("image", pdf_id))

        received = await receiver.wait_for(10)
        statuses = kit.statuses(received)
        by_wamid: dict[str, list[dict[str, Any]]] = {}
        for item in statuses:
            by_wamid.setdefault(item["id"], []).append(item)
        assert by_wamid[image_ok][0]["status"] == "sent"
        assert by_wamid[image_as_document][0]["status"] == "sent"
        (failed,) = by_wamid[document_as_image]
        assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131053
        assert failed["errors"][0]["title"] == "Media upload error"


async def test_client_drives_the_new_control_endpoints(receiver: Any, kit: Any) -> None:
    async with serve_in_background(create_app(kit.settings())) as server:
        async with SimulatorClient(server.url) as sim, httpx.AsyncClient(base_url=server.url) as graph:
            number = await sim.register_number(
                phone_number_id=kit.PNID,
                waba_id=kit.WABA_ID,
                display_phone_number=kit.DISPLAY,
                access_token=kit.TOKEN,
                app_secret=kit.APP_SECRET,
                webhook_url=receiver.url,
                throughput_mps=5,
            )
            assert number["throughputMps"] == 5
            config = await sim.config(pair_rate_burst=2, pair_rate_per_seconds=60, throughput_enforcement=True)
            assert config["pairRate"] == {"burst": 2, "perSeconds": 60.0}
            assert (await sim.get_config())["windowEnforcement"] == "async"
            assert (await sim.open_window(phone_number_id=kit.PNID, wa_id=kit.GUEST))["open"] is True
            rule = await sim.add_status_rule(phone_number_id=kit.PNID, sequence=["sent"], times=2)
            assert [item["id"] for item in await sim.status_rules()] == [rule["id"]]
            await sim.clear_status_rules()
            assert await sim.status_rules() == []
            codes = [(await graph.post(URL, json=kit.text_send(), headers=kit.auth())).status_code for _ in range(3)]
            assert codes == [200, 200, 400]  # the pair rate of 2
            stats = await sim.throughput(phone_number_id=kit.PNID)
            assert (stats["limitMps"], stats["received"]) == (5, 3)
            echo = await sim.send_echo(phone_number_id=kit.PNID, to=kit.GUEST, text="from the app")
            assert echo["delivered"] is True
            await sim.add_fault(phone_number_id=kit.PNID, code=131000)
            await sim.clear_faults()
            expired = await sim.expire_token(phone_number_id=kit.PNID)
            assert expired["tokenExpired"] is True
            assert (await graph.post(URL, json=kit.text_send(), headers=kit.auth())).json()["error"]["code"] == 190
