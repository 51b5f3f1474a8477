"""How Meta delivers (reference §2–§4) against what the inbox shows: batches, concurrent duplicates, reordered
timestamps, Meta's unicode escaping, statuses with their own timestamps (also before their message) and the
signature test vector of §2 through ingest."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from e2e_support import (
    Inbox,
    all_messages,
    changes_of,
    deliver,
    eventually,
    loopback_client,
    new_wa_id,
    new_wamid,
    reference_payload,
    register_hotel,
    retarget,
    stored_message,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def at(timestamp: str | int) -> datetime:
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def parsed(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def text_payload(inbox: Inbox, wa_id: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Meta's text payload (§3.2) carrying the messages (body, unix timestamp) of one guest."""
    payload = reference_payload("text")
    (value,) = changes_of(payload)
    template = value["messages"][0]
    value["messages"] = [{**copy.deepcopy(template), "timestamp": ts, "text": {"body": body}} for body, ts in items]
    retarget(payload, phone_number_id=inbox.hotel.phone_number_id, wa_id=wa_id)
    return payload


async def test_one_delivery_with_many_entries_changes_messages_and_statuses(inbox: Inbox) -> None:
    payload = reference_payload("batch")  # §3.1: one entry, a change of 2 messages and a change of 2 statuses
    guest_a, guest_b = new_wa_id(), new_wa_id()
    wamids_a = retarget(payload, phone_number_id=inbox.hotel.phone_number_id, wa_id=guest_a)
    # a second entry: another guest's change with three messages, and one more message of the first guest
    other = text_payload(inbox, guest_b, [("b1", "1749416386"), ("b2", "1749416387"), ("b3", "1749416388")])
    later = text_payload(inbox, guest_a, [("third", "1749416389")])
    payload["entry"].append({"id": "102290129340398",
                             "changes": other["entry"][0]["changes"] + later["entry"][0]["changes"]})
    wamids_b = [m["id"] for m in changes_of(other)[0]["messages"]]
    wamids_a.append(changes_of(later)[0]["messages"][0]["id"])
    # the statuses change names the first guest's messages (read, delivered: each with its own timestamp)
    statuses = changes_of(payload)[1]["statuses"]
    statuses[0]["id"], statuses[1]["id"] = wamids_a[0], wamids_a[1]

    sent = await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload)
    assert [a["status"] for a in sent["attempts"]] == [200], sent

    conversation_a = await inbox.conversation_of(wamids_a[0])
    conversation_b = await inbox.conversation_of(wamids_b[0])
    assert conversation_a != conversation_b
    for conversation, wamids in ((conversation_a, wamids_a), (conversation_b, wamids_b)):
        await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation, wamids[-1])
        stored = await all_messages(inbox.http, inbox.stack, inbox.hotel.auth, conversation)
        assert [m["wamid"] for m in stored] == wamids
    stored = await all_messages(inbox.http, inbox.stack, inbox.hotel.auth, conversation_a)
    assert [m["content"]["body"] for m in stored] == ["first", "second", "third"]

    def history(message: dict[str, Any]) -> list[tuple[str, datetime | None]]:
        return [(change["status"], parsed(change["at"])) for change in message["statusHistory"]]

    first = await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_a, wamids_a[0],
                                 lambda m: bool(m["statusHistory"]))
    second = await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_a, wamids_a[1],
                                  lambda m: bool(m["statusHistory"]))
    assert ("READ", at("1749416390")) in history(first)
    assert ("DELIVERED", at("1749416385")) in history(second)
    assert first["status"] == second["status"] == "RECEIVED"  # an inbound message stays received


async def test_the_same_delivery_posted_concurrently_is_stored_once(inbox: Inbox) -> None:
    wa_id = new_wa_id()
    payload = text_payload(inbox, wa_id, [("only once, please", str(int(datetime.now(UTC).timestamp())))])
    (wamid,) = [m["id"] for m in changes_of(payload)[0]["messages"]]

    results = await asyncio.gather(*(deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload)
                                     for _ in range(8)))
    assert all(result["delivered"] for result in results), results

    conversation_id = await inbox.conversation_of(wamid)
    # a later message of the same guest: once it is visible, every copy of the first has been processed
    after = text_payload(inbox, wa_id, [("after", str(int(datetime.now(UTC).timestamp()) + 1))])
    (after_wamid,) = [m["id"] for m in changes_of(after)[0]["messages"]]
    await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, after)
    await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id, after_wamid)

    stored = await all_messages(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id)
    assert [m["wamid"] for m in stored] == [wamid, after_wamid]
    assert [e["wamid"] for e in inbox.socket.named("message:new")].count(wamid) == 1
    response = await inbox.http.get(f"{inbox.stack.gateway}/api/conversations/{conversation_id}",
                                    headers=inbox.hotel.auth)
    assert response.status_code == 200, response.text
    assert response.json()["unreadCount"] == 2


async def test_messages_are_ordered_by_metas_timestamp_not_by_arrival(inbox: Inbox) -> None:
    wa_id = new_wa_id()
    base = int(datetime.now(UTC).timestamp()) - 600
    arrivals = [("third", base + 30), ("first", base), ("fourth", base + 40), ("second", base + 10)]
    wamids: dict[str, str] = {}
    for body, ts in arrivals[:2]:  # one delivery each, the later one first
        payload = text_payload(inbox, wa_id, [(body, str(ts))])
        wamids[body] = changes_of(payload)[0]["messages"][0]["id"]
        assert (await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload))["delivered"] is True
    payload = text_payload(inbox, wa_id, [(body, str(ts)) for body, ts in arrivals[2:]])  # one batch, reversed
    for message in changes_of(payload)[0]["messages"]:
        wamids[message["text"]["body"]] = message["id"]
    assert (await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload))["delivered"] is True

    conversation_id = await inbox.conversation_of(wamids["first"])
    for wamid in wamids.values():
        await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id, wamid)
    stored = await all_messages(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id)
    assert [m["content"]["body"] for m in stored] == ["first", "second", "third", "fourth"]
    assert [parsed(m["sentAt"]) for m in stored] == [at(base), at(base + 10), at(base + 30), at(base + 40)]


async def test_unicode_in_metas_escaping_is_stored_as_written(inbox: Inbox) -> None:
    wa_id = new_wa_id()
    body = 'café 😀 https://x.y/z — Ünïcödé 日本語 "quoted" \\ back\\slash 👍🏽'
    payload = text_payload(inbox, wa_id, [(body, str(int(datetime.now(UTC).timestamp())))])
    changes_of(payload)[0]["contacts"][0]["profile"]["name"] = "José 🌊 Ñandú"
    (wamid,) = [m["id"] for m in changes_of(payload)[0]["messages"]]
    # Meta's bytes: compact, non-ASCII as lowercase \uXXXX (surrogate pairs for emoji) and "/" as "\/"
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")
    assert "\\ud83d\\ude00" in raw and "https:\\/\\/x.y\\/z" in raw and "caf\\u00e9" in raw

    sent = await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, None, rawBody=raw)
    assert [a["status"] for a in sent["attempts"]] == [200], sent

    message = await inbox.message(wamid)
    assert message["content"]["body"] == body
    event = await inbox.socket.wait_for("message:new", lambda data: data.get("wamid") == wamid)
    assert event["contact"]["name"] == "José 🌊 Ñandú"


def status_payload(inbox: Inbox, name: str, wamid: str, wa_id: str) -> dict[str, Any]:
    """One of Meta's status payloads of the reference (§3.20–3.23) for `wamid`."""
    payload = reference_payload(name)
    retarget(payload, phone_number_id=inbox.hotel.phone_number_id, wa_id=wa_id)
    for value in changes_of(payload):
        value.pop("contacts", None)  # the 2026 BSUID contacts of pywa's fixtures name their guest, not ours
        for item in value["statuses"]:
            item["id"] = wamid
    return payload


def echo_payload(inbox: Inbox, wa_id: str, wamid: str, body: str, timestamp: str) -> dict[str, Any]:
    """A coexistence echo (§12, `smb_message_echoes`): what the business sent the guest from the WhatsApp Business
    app, whose statuses Meta sends like those of any of the business's messages."""
    payload = text_payload(inbox, wa_id, [(body, timestamp)])
    (change,) = [change for entry in payload["entry"] for change in entry["changes"]]
    metadata = change["value"]["metadata"]
    change["field"] = "smb_message_echoes"
    change["value"] = {"messaging_product": "whatsapp", "metadata": metadata, "message_echoes": [{
        "from": metadata["display_phone_number"], "to": wa_id, "id": wamid, "timestamp": timestamp,
        "type": "text", "text": {"body": body}}]}
    return payload


async def test_statuses_keep_their_own_timestamps_errors_and_pricing_and_wait_for_their_message(
        inbox: Inbox) -> None:
    """A status naming a wamid not stored yet is parked, then applied when the message appears; each status keeps
    Meta's timestamp, a failure keeps Meta's error, the pricing category is kept. The message is one the business
    sent from its WhatsApp Business app (an echo): Meta sends statuses only for the business's messages."""
    wa_id = new_wa_id()
    wamid = new_wamid()
    greeting = text_payload(inbox, wa_id, [("hello", "1689379990")])  # the guest wrote first
    assert (await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, greeting))["delivered"] is True
    for name in ("status_read", "status_failed", "status_delivered"):  # out of order, before their message
        sent = await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id,
                             status_payload(inbox, name, wamid, wa_id))
        assert [a["status"] for a in sent["attempts"]] == [200], sent

    payload = echo_payload(inbox, wa_id, wamid, "the message the statuses name", "1689380000")
    assert (await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload))["delivered"] is True

    message = await inbox.message(wamid, lambda m: len(m["statusHistory"]) >= 3)
    history = {change["status"]: change for change in message["statusHistory"]}
    assert parsed(history["READ"]["at"]) == at("1689380458")
    assert parsed(history["DELIVERED"]["at"]) == at("1698266945")
    assert parsed(history["FAILED"]["at"]) == at("1751142888")
    failure = history["FAILED"]["error"]
    failure = failure[0] if isinstance(failure, list) else failure
    assert failure["code"] == 131049
    assert failure["title"] == "This message was not delivered to maintain healthy ecosystem engagement."
    assert "healthy ecosystem engagement" in json.dumps(failure)  # Meta's details are kept
    assert message["pricingCategory"] == "service"
    assert message["direction"] == "outbound" and message["source"] == "business_app"
    assert message["status"] == "READ"  # forward only: the later DELIVERED and FAILED did not move it back

    # the same statuses again (Meta retries): nothing new in the history
    for name in ("status_read", "status_failed"):
        await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, status_payload(inbox, name, wamid, wa_id))
    marker = text_payload(inbox, wa_id, [("marker", "1689380001")])
    (marker_wamid,) = [m["id"] for m in changes_of(marker)[0]["messages"]]
    await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, marker)
    conversation_id = await inbox.conversation_of(wamid)
    await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id, marker_wamid)
    again = await stored_message(inbox.http, inbox.stack, inbox.hotel.auth, conversation_id, wamid)
    assert sorted(change["status"] for change in again["statusHistory"]) == ["DELIVERED", "FAILED", "READ"]


TEST_VECTOR = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":'
    b'"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":'
    b'[{"profile":{"name":"Jos\\u00e9"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.TEST1",'
    b'"timestamp":"1749416383","type":"text","text":{"body":"caf\\u00e9 \\ud83d\\ude00 https:\\/\\/x.y\\/z"}}]},'
    b'"field":"messages"}]}]}'
)
TEST_VECTOR_SIGNATURE = "sha256=4deaad9fc7f05f0547ab32422e3c16829fadb11472d66badb6e7de5df1f9ae2e"
REENCODED_SIGNATURE = "sha256=c7c20ca563af45cb53d8da05a30a3510516cce593d88132238ccc95fa17bf64d"


async def test_the_signature_test_vector_of_the_reference_through_ingest(inbox: Inbox) -> None:
    """§2: the escaped bytes sign to 4deaad…; the same object re-encoded as raw UTF-8 signs to c7c20c…, so a receiver
    that re-serializes before checking would refuse Meta's genuine delivery."""
    assert "sha256=" + hmac.new(b"test_app_secret", TEST_VECTOR, hashlib.sha256).hexdigest() == TEST_VECTOR_SIGNATURE
    async with loopback_client() as http:
        hotel = await register_hotel(http, inbox.stack, configure_whatsapp=False)
        claimed = await http.put(f"{inbox.stack.gateway}/api/tenant/whatsapp", headers=hotel.auth, json={
            "phoneNumberId": "106540352242922", "wabaId": "102290129340398", "accessToken": "EAA" + uuid.uuid4().hex,
            "appSecret": "test_app_secret", "verifyToken": uuid.uuid4().hex})
        # the reference's number is claimed by the first run's hotel on a reused test database (same app secret)
        assert claimed.status_code in (200, 409), claimed.text
        url = f"{inbox.stack.ingest}/webhooks/whatsapp"
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        genuine = await http.post(url, content=TEST_VECTOR, headers={**headers,
                                                                     "X-Hub-Signature-256": TEST_VECTOR_SIGNATURE})
        assert genuine.status_code == 200, genuine.text
        reencoded = await http.post(url, content=TEST_VECTOR, headers={**headers,
                                                                       "X-Hub-Signature-256": REENCODED_SIGNATURE})
        assert reencoded.status_code == 401, reencoded.text
        if claimed.status_code == 200:
            stored = await vector_message(http, inbox, hotel.auth)
            assert stored["content"]["body"] == "café 😀 https://x.y/z"


async def vector_message(http: httpx.AsyncClient, inbox: Inbox, auth: dict[str, str]) -> dict[str, Any]:
    """wamid.TEST1 in the conversations of the hotel that owns the reference's number."""

    async def probe() -> dict[str, Any] | None:
        response = await http.get(f"{inbox.stack.gateway}/api/conversations", headers=auth)
        assert response.status_code == 200, response.text
        for conversation in response.json()["items"]:
            for message in await all_messages(http, inbox.stack, auth, conversation["id"]):
                if message["wamid"] == "wamid.TEST1":
                    return message
        return None

    found: dict[str, Any] = await eventually(probe)
    return found
