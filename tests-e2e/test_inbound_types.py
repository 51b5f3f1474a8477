"""Every inbound type of Meta's reference (§3.2–3.18, see docs/architecture.md), verbatim but for the ids, delivered
signed by the simulator, shows up typed through the gateway's API; media become ready and download byte for byte."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from e2e_support import (
    Inbox,
    changes_of,
    deliver,
    new_wa_id,
    pick,
    reference_payload,
    register_hotel,
    retarget,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

Check = Callable[[dict[str, Any]], None]


def _media(mime_type: str, **fields: Any) -> Check:
    def check(message: dict[str, Any]) -> None:
        content = message["content"]
        assert content["mimeType"] == mime_type
        assert content["id"] and content["sha256"]
        for name, expected in fields.items():
            assert content[name] == expected, (name, content)
        # Meta's media id of the reference is unknown to the simulator: the download job cannot succeed, but the
        # message is stored at once with its media tracked
        assert message["media"] is not None and message["media"]["status"] in ("pending", "failed"), message["media"]
    return check


def _text(body: str) -> Check:
    def check(message: dict[str, Any]) -> None:
        assert message["content"] == {"body": body}
    return check


def _forwarded(check: Check) -> Check:
    def both(message: dict[str, Any]) -> None:
        check(message)
        assert message["context"] is not None and message["context"].get("forwarded") is True, message["context"]
    return both


def _location(message: dict[str, Any]) -> None:
    assert message["content"] == {"latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
                                  "address": "101 Forest Ave, Palo Alto, CA 94301", "url": "https://philzcoffee.com/"}


def _contacts(message: dict[str, Any]) -> None:
    (card,) = message["content"]["contacts"]
    assert pick(card["name"], "formatted_name") == "Lucía Gómez"
    assert pick(card["name"], "first_name") == "Lucía" and pick(card["name"], "last_name") == "Gómez"
    assert card["org"]["company"] == "Google"
    (phone,) = card["phones"]
    assert phone["phone"] == "+1 (983) 555-2319" and pick(phone, "wa_id") == "19835552319"


def _interactive(kind: str, **fields: str) -> Check:
    def check(message: dict[str, Any]) -> None:
        assert message["content"] == {"type": kind, **fields}
    return check


def _replying_to(replied: str, check: Check) -> Check:
    def both(message: dict[str, Any]) -> None:
        check(message)
        assert message["context"] is not None and message["context"]["id"] == replied, message["context"]
    return both


def _button(message: dict[str, Any]) -> None:
    assert message["content"] == {"payload": "Unsubscribe", "text": "Unsubscribe"}


def _reaction(message: dict[str, Any]) -> None:
    content = message["content"]
    assert content["messageId"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"
    assert content["emoji"] == "👍" and not content.get("removed")


def _order(message: dict[str, Any]) -> None:
    content = message["content"]
    assert content["catalogId"] == "194836987003835"
    assert content.get("text", "") == ""
    assert [(i["productRetailerId"], i["quantity"], i["itemPrice"], i["currency"])
            for i in content["productItems"]] == [("di9ozbzfi4", 2, 30, "USD"), ("nqryix03ez", 1, 25, "USD")]


def _unsupported(message: dict[str, Any]) -> None:
    errors = message["errors"] if message["errors"] else message["content"].get("errors")
    assert isinstance(errors, list) and errors, message
    assert errors[0]["code"] == 131051 and errors[0]["title"] == "Message type unknown"
    assert pick(errors[0]["error_data"] if "error_data" in errors[0] else errors[0].get("errorData"),
                "details") == "Message type is currently not supported."
    assert message["content"]["raw"] == {"type": "edit"}, message["content"]


def _referral(message: dict[str, Any]) -> None:
    assert message["content"] == {"body": "Hello! Can I get more info on this?"}
    referral = message["referral"]
    assert referral is not None
    assert pick(referral, "source_url") == "https://fb.me/3cr4Wqqkv"
    assert pick(referral, "source_id") == "120226305854810726" and pick(referral, "source_type") == "ad"
    assert referral["headline"] == "Chat with us" and referral["body"] == "Summer Succulents are here!"
    assert pick(referral, "ctwa_clid").startswith("Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0")
    assert pick(pick(referral, "welcome_message"), "text") == "Hi there! Let us know how we can help!"


def _product_inquiry(message: dict[str, Any]) -> None:
    assert message["content"] == {"body": "Is this still available?"}
    context = message["context"]
    assert context["id"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"
    product = pick(context, "referred_product")
    assert pick(product, "catalog_id") == "194836987003835" and pick(product, "product_retailer_id") == "di9ozbzfi4"


def _system(message: dict[str, Any]) -> None:
    content = message["content"]
    assert content["body"] == "User Sheena Nelson changed from 16505551234 to 12195555358"
    assert content["type"] == "user_changed_number"
    assert "12195555358" in (pick(content, "wa_id"), pick(content, "new_wa_id"))


# name in tests-e2e/data (reference section), the type Eva stores, and what the message must show
CASES: list[tuple[str, str, Check]] = [
    ("text", "text", _text("Does it come in another color?")),
    ("image", "image", _media("image/jpeg", caption="Taj Mahal")),
    ("audio", "audio", _forwarded(_media("audio/ogg; codecs=opus", voice=False))),
    ("voice", "audio", _media("audio/ogg; codecs=opus", voice=True)),
    ("video", "video", _forwarded(_media("video/mp4", caption="caption"))),
    ("document", "document", _media("application/pdf", caption="my receipt", filename="receipt.pdf")),
    ("sticker", "sticker", _media("image/webp", animated=True)),
    ("location", "location", _location),
    ("contacts", "contacts", _contacts),
    ("button_reply", "interactive", _interactive("button_reply", id="cancel-button", title="Cancel")),
    ("list_reply", "interactive", _replying_to(
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA",
        _interactive("list_reply", id="priority_express", title="Priority Mail Express",
                     description="Next Day to 2 Days"))),
    ("button", "button", _replying_to("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA", _button)),
    ("reaction", "reaction", _reaction),
    ("order", "order", _order),
    ("unsupported", "unsupported", _unsupported),
    ("referral", "text", _referral),
    ("reply", "text", _replying_to("wamid.xyzxyz==", _text("replied text"))),
    ("product_inquiry", "text", _product_inquiry),
    ("system", "system", _system),
]


@pytest.mark.parametrize(("name", "stored_type", "check"), CASES, ids=[case[0] for case in CASES])
async def test_reference_payload_shows_up_typed(inbox: Inbox, name: str, stored_type: str, check: Check) -> None:
    payload = reference_payload(name)
    wa_id = new_wa_id()
    (wamid,) = retarget(payload, phone_number_id=inbox.hotel.phone_number_id, wa_id=wa_id)

    sent = await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload)
    assert [a["status"] for a in sent["attempts"]] == [200], sent

    message = await inbox.message(wamid)
    assert message["type"] == stored_type, message
    assert message["direction"] == "inbound" and message["status"] == "RECEIVED"
    assert message["contactId"]
    check(message)

    # the conversation of the guest lists it as its last activity
    response = await inbox.http.get(f"{inbox.stack.gateway}/api/conversations/{message['conversationId']}",
                                    headers=inbox.hotel.auth)
    assert response.status_code == 200, response.text
    conversation = response.json()
    assert conversation["id"] == message["conversationId"] and conversation["status"] == "open"
    assert conversation["contactId"] == message["contactId"]
    if name != "system":  # a system message comes without `contacts` (and announces the guest's new number)
        assert conversation["contact"]["waId"] == wa_id


async def test_reaction_removal_is_recorded(inbox: Inbox) -> None:
    wa_id = new_wa_id()
    reacted = reference_payload("reaction")
    (first,) = retarget(reacted, phone_number_id=inbox.hotel.phone_number_id, wa_id=wa_id)
    removed = reference_payload("reaction")
    (second,) = retarget(removed, phone_number_id=inbox.hotel.phone_number_id, wa_id=wa_id)
    for value in changes_of(removed):  # Meta: "a webhook without the 'emoji' field" when the guest removes it
        for message in value["messages"]:
            del message["reaction"]["emoji"]
            message["timestamp"] = str(int(message["timestamp"]) + 60)
    for payload in (reacted, removed):
        sent = await deliver(inbox.http, inbox.stack, inbox.hotel.phone_number_id, payload)
        assert sent["delivered"] is True, sent

    stored = await inbox.message(second)
    assert stored["type"] == "reaction"
    assert stored["content"]["messageId"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"
    assert not stored["content"].get("emoji") and stored["content"].get("removed") is True
    assert (await inbox.message(first))["content"]["emoji"] == "👍"


# media the simulator holds (POST /_sim/media): type, MIME type, size, extra content fields
MEDIA: list[tuple[str, str, int, dict[str, Any]]] = [
    ("image", "image/jpeg", 150_000, {"caption": "Quarto 204 ☀️"}),
    ("audio", "audio/mpeg", 40_000, {"voice": False}),
    ("audio", "audio/ogg", 20_000, {"voice": True}),
    ("video", "video/mp4", 300_000, {"caption": "a piscina"}),
    ("document", "application/pdf", 70_000, {"filename": "fatura-204.pdf", "caption": "a fatura"}),
    ("sticker", "image/webp", 30_000, {"animated": False}),
]


@pytest.mark.parametrize(("kind", "mime_type", "size", "fields"), MEDIA,
                         ids=["image", "audio", "voice", "video", "document", "sticker"])
async def test_media_becomes_ready_and_downloads_exactly(inbox: Inbox, kind: str, mime_type: str, size: int,
                                                         fields: dict[str, Any]) -> None:
    data = secrets.token_bytes(size)
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/media", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "mimeType": mime_type,
        **({"filename": fields["filename"]} if "filename" in fields else {}),
        "contentBase64": base64.b64encode(data).decode("ascii")})
    assert response.status_code in (200, 201), response.text
    media = response.json()
    assert media["sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")

    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/guest-messages", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "from": new_wa_id(), "name": "Inês Araújo", "type": kind,
        "content": {"mediaId": media["id"], **fields}})
    assert response.status_code == 200, response.text
    sent = response.json()
    assert sent["delivered"] is True, sent

    message = await inbox.message(sent["wamid"], lambda m: (m.get("media") or {}).get("status") != "pending",
                                  timeout=30.0)
    assert message["type"] == kind
    assert message["media"]["status"] == "ready", message["media"]
    assert message["media"]["mimeType"] == mime_type and message["media"]["size"] == size
    assert message["content"]["id"] == media["id"] and message["content"]["mimeType"] == mime_type
    for name, expected in fields.items():
        assert message["content"][name] == expected, (name, message["content"])

    response = await inbox.http.get(f"{inbox.stack.gateway}/api/messages/{message['id']}/media",
                                    headers=inbox.hotel.auth)
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"].split(";")[0] == mime_type.split(";")[0]
    if kind == "document":
        assert "fatura-204.pdf" in response.headers.get("content-disposition", "")


async def test_media_of_another_tenant_is_not_found(inbox: Inbox) -> None:
    data = secrets.token_bytes(5_000)
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/media", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "mimeType": "image/png",
        "contentBase64": base64.b64encode(data).decode("ascii")})
    assert response.status_code in (200, 201), response.text
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/guest-messages", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "from": new_wa_id(), "type": "image",
        "content": {"mediaId": response.json()["id"]}})
    assert response.status_code == 200, response.text
    message = await inbox.message(response.json()["wamid"], lambda m: (m.get("media") or {}).get("status") == "ready",
                                  timeout=30.0)

    other = await register_hotel(inbox.http, inbox.stack, configure_whatsapp=False)
    response = await inbox.http.get(f"{inbox.stack.gateway}/api/messages/{message['id']}/media", headers=other.auth)
    assert response.status_code == 404, response.text
    assert data not in response.content


async def test_media_whose_bytes_do_not_match_metas_sha256_fails_and_is_never_served(inbox: Inbox) -> None:
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/media", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "mimeType": "image/jpeg", "sizeBytes": 8_000})
    assert response.status_code in (200, 201), response.text
    media_id = response.json()["id"]
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/media/{media_id}/corrupt", json={"corrupt": True})
    assert response.status_code == 200 and response.json()["corrupt"] is True, response.text
    response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/guest-messages", json={
        "phoneNumberId": inbox.hotel.phone_number_id, "from": new_wa_id(), "type": "image",
        "content": {"mediaId": media_id, "caption": "corrupted on the way"}})
    assert response.status_code == 200, response.text

    # stored at once, media pending while the job retries, then failed: the bytes are never served
    message = await inbox.message(response.json()["wamid"], lambda m: m["media"]["status"] == "failed",
                                  timeout=120.0)
    assert message["content"]["caption"] == "corrupted on the way"
    assert message["media"]["error"]
    response = await inbox.http.get(f"{inbox.stack.gateway}/api/messages/{message['id']}/media",
                                    headers=inbox.hotel.auth)
    assert response.status_code in (409, 422), response.text
    assert response.json()["code"] in ("MEDIA_NOT_READY", "MEDIA_FAILED")
