"""The webhook walker on Meta's reference payloads (reference §3, see docs/architecture.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from messaging_service.webhook import Sender, meta_timestamp, walk

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def test_inbound_text() -> None:
    batch = walk(payload("text"))
    assert batch.statuses == [] and batch.errors == [] and batch.ignored == 0
    [message] = batch.messages
    assert message.wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.type == "text" and message.content == {"body": "Does it come in another color?"}
    assert message.sender == Sender(wa_id="16505551234", user_id=None, profile_name="Sheena Nelson")
    assert message.sent_at == datetime.fromtimestamp(1749416383, UTC)
    assert message.phone_number_id == "106540352242922"
    assert message.context is None and message.referral is None and message.errors is None
    assert message.raw["text"] == {"body": "Does it come in another color?"}


def test_a_batch_yields_every_message_and_status_in_order() -> None:
    batch = walk(payload("batch"))
    assert [(m.wamid, m.content["body"]) for m in batch.messages] == [("wamid.A1", "first"), ("wamid.A2", "second")]
    assert all(m.sender.profile_name == "Sheena Nelson" for m in batch.messages)
    assert [(s.wamid, s.status, s.recipient_id) for s in batch.statuses] == [
        ("wamid.OUT1", "READ", "16505551234"), ("wamid.OUT2", "DELIVERED", "16505551234")]


def test_several_entries_and_changes_are_all_walked() -> None:
    text, image = payload("text"), payload("image")
    combined = {"object": "whatsapp_business_account",
                "entry": [text["entry"][0], {**image["entry"][0],
                                             "changes": image["entry"][0]["changes"] * 2}]}
    assert [m.type for m in walk(combined).messages] == ["text", "image", "image"]


def test_an_image_keeps_metas_object_as_its_content() -> None:
    [message] = walk(payload("image")).messages
    assert message.type == "image"
    assert message.content["caption"] == "Taj Mahal" and message.content["id"] == "1003383421387256"
    assert message.content["mimeType"] == "image/jpeg" and message.content["url"].startswith("https://lookaside")


def test_a_system_message_without_contacts_is_attributed_to_its_sender() -> None:
    [message] = walk(payload("system")).messages
    assert message.type == "system"
    assert message.sender == Sender(wa_id="16505551234", user_id=None, profile_name=None)
    assert message.content["type"] == "user_changed_number" and message.content["waId"] == "12195555358"


def test_a_bsuid_only_contact_is_identified_by_its_user_id() -> None:
    [message] = walk(payload("bsuid_only")).messages
    assert message.sender == Sender(wa_id=None, user_id="US.13491208655302741918", profile_name="Sheena Nelson")
    assert message.content == {"body": "Hi, username only here"}


def test_a_contact_with_wa_id_and_user_id_gives_both() -> None:
    [message] = walk(payload("image_with_bsuid")).messages
    assert message.sender == Sender(wa_id="51920155032", user_id="PE.967744529547245", profile_name="Carlos Polanco")
    assert message.content["caption"] == "Hola quiero un café"


def test_context_referral_and_message_errors_are_kept() -> None:
    [reply] = walk(payload("reply_context")).messages
    assert reply.context == {"from": "972123456789", "id": "wamid.xyzxyz=="}
    assert reply.sender.user_id == "US.13491208655302741918"  # from the matched contact
    [ad] = walk(payload("referral")).messages
    assert ad.referral is not None and ad.referral["source_type"] == "ad" and ad.referral["ctwa_clid"]
    [unsupported] = walk(payload("unsupported")).messages
    assert unsupported.type == "unsupported" and unsupported.content["type"] == "edit"
    assert unsupported.content["errors"][0]["code"] == 131051
    assert unsupported.errors is not None and unsupported.errors[0]["code"] == 131051


def test_statuses() -> None:
    [sent] = walk(payload("status_sent")).statuses
    assert (sent.status, sent.occurred_at) == ("SENT", datetime.fromtimestamp(1750030073, UTC))
    assert sent.raw["pricing"]["pricing_model"] == "PMP" and sent.errors is None
    [delivered] = walk(payload("status_delivered")).statuses
    assert (delivered.wamid, delivered.status) == ("wamid.xyzxyz", "DELIVERED")
    assert walk(payload("status_delivered")).messages == []  # contacts beside statuses are not messages
    [read] = walk(payload("status_read")).statuses
    assert read.status == "READ"
    [failed] = walk(payload("status_failed")).statuses
    assert failed.status == "FAILED" and failed.errors is not None and failed.errors[0]["code"] == 131049


def test_value_level_errors() -> None:
    batch = walk(payload("value_errors"))
    assert batch.messages == [] and batch.statuses == []
    [error] = batch.errors
    assert (error.code, error.title, error.phone_number_id) == (130429, "Rate limit hit", "106540352242922")
    assert error.details is not None and error.details.startswith("Message failed to send")


def test_other_fields_and_malformed_items_are_counted_not_fatal() -> None:
    data = {"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [
            {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
            {"field": "messages", "value": {
                "metadata": {"phone_number_id": "1"},
                "messages": [{"type": "text", "text": {"body": "no id"}}, "junk",
                             {"id": "wamid.OK", "from": "1", "timestamp": "nope", "type": "text"}],
                "statuses": [{"id": "wamid.X"}]}},
            "junk"]},
        "junk"]}
    batch = walk(data)
    assert batch.ignored == 3  # the other field, the message without id, the status without status
    [message] = batch.messages
    assert (message.wamid, message.sent_at, message.content) == ("wamid.OK", None, {"body": ""})
    assert walk({}).messages == [] and walk({"entry": "x"}).ignored == 0


def test_a_message_without_a_type_is_unknown_and_keeps_its_raw_object() -> None:
    data = {"entry": [{"changes": [{"field": "messages", "value": {"messages": [
        {"id": "wamid.N", "from": "1", "timestamp": "1749416383", "poll": {"question": "?"}}]}}]}]}
    [message] = walk(data).messages
    assert message.type == "unknown" and message.content["type"] == "unknown"
    assert message.content["raw"] == {"poll": {"question": "?"}} and message.raw["poll"] == {"question": "?"}


def test_meta_timestamps() -> None:
    assert meta_timestamp("1749416383") == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    assert meta_timestamp(1749416383) == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    for bad in (None, "", "abc", "0", "-5", "99999999999999999999"):
        assert meta_timestamp(bad) is None
