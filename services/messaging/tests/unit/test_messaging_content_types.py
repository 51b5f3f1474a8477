"""Typed content of every inbound type, read from the reference's payloads verbatim (camelCase in content_json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from messaging_service import media_state
from messaging_service.content import parse_content
from messaging_service.webhook import InboundMessage, walk

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


def only_message(name: str) -> InboundMessage:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    [message] = walk(payload).messages
    return message


def test_text() -> None:
    message = only_message("text_reference")
    assert (message.type, message.content) == ("text", {"body": "Does it come in another color?"})


def test_image_keeps_the_media_fields_and_caption() -> None:
    message = only_message("image")
    assert message.content == {
        "id": "1003383421387256", "mimeType": "image/jpeg", "sha256": message.raw["image"]["sha256"],
        "url": message.raw["image"]["url"], "caption": "Taj Mahal"}


@pytest.mark.parametrize(("name", "voice"), [("audio", False), ("voice", True)])
def test_audio_and_voice_notes(name: str, voice: bool) -> None:
    message = only_message(name)
    assert message.type == "audio"
    assert message.content == {"id": "1234567890987654321", "mimeType": "audio/ogg; codecs=opus",
                               "sha256": message.raw["audio"]["sha256"], "voice": voice}


def test_video_with_caption_and_forwarded_context() -> None:
    message = only_message("video")
    assert message.content == {"id": "765756756", "mimeType": "video/mp4",
                               "sha256": "Jh+2ij6PzUv/J2y+grrtegr/ZMzRxkEPwc24Oyib4s03w9Jc=", "caption": "caption"}
    assert message.context == {"forwarded": True}


def test_document_keeps_its_filename() -> None:
    message = only_message("document")
    assert message.content["filename"] == "receipt.pdf" and message.content["caption"] == "my receipt"
    assert message.content["mimeType"] == "application/pdf" and message.content["id"] == "622684793477189"


def test_sticker_is_animated() -> None:
    message = only_message("sticker")
    assert message.content["animated"] is True and message.content["mimeType"] == "image/webp"


def test_location() -> None:
    assert only_message("location").content == {
        "latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301", "url": "https://philzcoffee.com/"}


def test_contacts_are_kept_as_meta_shaped_them_with_unicode() -> None:
    message = only_message("contacts")
    [card] = message.content["contacts"]
    assert card["name"]["formatted_name"] == "Lucía Gómez" and card["phones"][0]["wa_id"] == "19835552319"


def test_interactive_button_reply() -> None:
    message = only_message("button_reply")
    assert (message.type, message.content) == (
        "interactive", {"type": "button_reply", "id": "cancel-button", "title": "Cancel"})
    assert message.context is not None and message.context["id"].startswith("wamid.")


def test_interactive_list_reply_has_a_description() -> None:
    assert only_message("list_reply").content == {
        "type": "list_reply", "id": "priority_express", "title": "Priority Mail Express",
        "description": "Next Day to 2 Days"}


def test_template_quick_reply_button() -> None:
    assert only_message("button").content == {"text": "Unsubscribe", "payload": "Unsubscribe"}


def test_reaction_and_its_removal() -> None:
    message = only_message("reaction")
    assert message.content == {"messageId": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA",
                               "emoji": "\U0001f44d", "removed": False}
    removal = dict(message.raw, reaction={"message_id": "wamid.X"})  # Meta omits the emoji to remove a reaction
    assert parse_content("reaction", removal)[1].to_json() == {"messageId": "wamid.X", "removed": True}
    emptied = dict(message.raw, reaction={"message_id": "wamid.X", "emoji": ""})
    assert parse_content("reaction", emptied)[1].to_json()["removed"] is True


def test_order_items_in_camel_case() -> None:
    content = only_message("order").content
    assert content["catalogId"] == "194836987003835" and content["text"] == ""
    assert content["productItems"] == [
        {"productRetailerId": "di9ozbzfi4", "quantity": 2, "itemPrice": 30.0, "currency": "USD"},
        {"productRetailerId": "nqryix03ez", "quantity": 1, "itemPrice": 25.0, "currency": "USD"}]


def test_referral_and_reply_context_are_kept_on_the_message() -> None:
    ad = only_message("referral")
    assert ad.referral is not None and ad.referral["source_type"] == "ad"
    reply = only_message("reply_forwarded")
    assert reply.context == {"from": "972123456789", "id": "wamid.xyzxyz=="}
    inquiry = only_message("product_inquiry")
    assert inquiry.context is not None and inquiry.context["referred_product"]["product_retailer_id"] == "di9ozbzfi4"


def test_system_message() -> None:
    content = only_message("system").content
    assert content["type"] == "user_changed_number" and content["waId"] == "12195555358"
    assert content["body"].startswith("User ")


def test_unsupported_keeps_the_original_type_and_metas_errors() -> None:
    message = only_message("unsupported")
    assert message.type == "unsupported" and message.content["type"] == "edit"
    assert message.content["errors"][0]["code"] == 131051


def test_a_malformed_known_type_becomes_unsupported_content_instead_of_failing() -> None:
    kind, content = parse_content("location", {"type": "location", "location": {"name": "no coordinates"}})
    assert kind == "location"
    assert content.to_json() == {"type": "location", "raw": {"name": "no coordinates"}, "errors": []}


def test_media_types_start_pending_with_metas_hash() -> None:
    document = only_message("document")
    assert media_state.initial(document.type, document.content) == {
        "status": "pending", "mediaId": "622684793477189", "mimeType": "application/pdf",
        "sha256": "V5OPpLD/gEG6Xjg0MbmQDLFgcKsL+j5LfY4ny/pZ4MY=", "filename": "receipt.pdf", "caption": "my receipt"}
    assert media_state.initial("text", {"body": "hi"}) is None
