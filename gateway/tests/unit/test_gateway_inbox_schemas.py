"""The inbox bodies: messages with media, statuses, context, referral and errors; conversation, tag, escalation and
contact requests validated at the edge; media download headers."""

from __future__ import annotations

from typing import Any

import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from gateway.media import content_disposition, media_type, safe_filename
from gateway.schemas.contacts import ContactCreateIn, ContactUpdateIn
from gateway.schemas.conversation import AssignIn, ConversationOut, ConversationUpdateIn
from gateway.schemas.escalations import EscalationCreateIn, EscalationOut, EscalationResolveIn
from gateway.schemas.messaging import MessageOut
from gateway.schemas.tags import TagCreateIn, TagUpdateIn
from pydantic import ValidationError


def test_a_media_message_shows_media_history_pricing_context_referral_and_errors() -> None:
    message = messaging_pb2.Message(
        id="m1", conversation_id="c1", direction="inbound", type="document", status="READ",
        content_json='{"filename": "fatura.pdf"}', context_json='{"from": "16505551234", "id": "wamid.prev"}',
        referral_json='{"source_type": "ad", "source_id": "1"}',
        error_json='[{"code": 131051, "title": "Message type unknown"}]', pricing_category="service",
        reactions_json='[{"from": "16505551234", "emoji": "\\ud83d\\udc4d", "reactionWamid": "wamid.R", '
                       '"reactedAt": "2026-11-29T10:00:03Z"}]',
        media=messaging_pb2.Media(status="ready", media_id="meta-1", mime_type="application/pdf", sha256="ab12",
                                  size=2048, filename="fatura.pdf", caption="A sua fatura"),
        status_history=[
            messaging_pb2.StatusChange(status="SENT", occurred_at="2026-11-29T10:00:00Z"),
            messaging_pb2.StatusChange(status="FAILED", occurred_at="2026-11-29T10:00:01Z",
                                       error_json='{"code": 131047, "title": "Re-engagement message"}'),
            messaging_pb2.StatusChange(status="READ", occurred_at="2026-11-29T10:00:02Z"),
        ],
    )
    body = MessageOut.from_proto(message).model_dump(by_alias=True)
    assert body["media"] == {"status": "ready", "mimeType": "application/pdf", "size": 2048,
                             "filename": "fatura.pdf", "caption": "A sua fatura", "sha256": "ab12", "error": None}
    assert "mediaId" not in body["media"]  # Meta's id is of no use to the browser
    assert body["statusHistory"] == [
        {"status": "SENT", "at": "2026-11-29T10:00:00Z", "error": None},
        {"status": "FAILED", "at": "2026-11-29T10:00:01Z", "error": {"code": 131047, "title": "Re-engagement message"}},
        {"status": "READ", "at": "2026-11-29T10:00:02Z", "error": None},
    ]
    assert body["pricingCategory"] == "service"
    assert body["context"] == {"from": "16505551234", "id": "wamid.prev"}
    assert body["referral"] == {"source_type": "ad", "source_id": "1"}
    assert body["errors"] == [{"code": 131051, "title": "Message type unknown"}]
    assert body["reactions"] == [{"from": "16505551234", "emoji": "\U0001f44d", "reactionWamid": "wamid.R",
                                  "reactedAt": "2026-11-29T10:00:03Z"}]


def test_a_pending_media_has_no_size_yet_and_unreadable_json_is_null() -> None:
    message = messaging_pb2.Message(id="m2", conversation_id="c1", direction="inbound", type="image", status="RECEIVED",
                                    error_json="{broken", media=messaging_pb2.Media(status="pending"))
    body = MessageOut.from_proto(message).model_dump(by_alias=True)
    assert body["media"]["status"] == "pending" and body["media"]["size"] is None
    assert body["errors"] is None and body["context"] is None


def test_conversation_shows_its_number_preview_and_tags() -> None:
    body = ConversationOut.from_proto(conversation_pb2.Conversation(
        id="c1", tenant_id="t1", contact_id="k1", status="open", phone_number_id="106540352242922",
        priority="high", last_message_preview="[image]", last_inbound_at="2026-11-29T10:00:00Z",
        tags=[conversation_pb2.Tag(id="tag-1", name="VIP", color="#ff0000", created_at="2026-11-01T00:00:00Z")],
    )).model_dump(by_alias=True)
    assert (body["phoneNumberId"], body["priority"]) == ("106540352242922", "high")
    assert (body["lastMessagePreview"], body["lastInboundAt"]) == ("[image]", "2026-11-29T10:00:00Z")
    assert body["tags"] == [{"id": "tag-1", "name": "VIP", "color": "#ff0000", "createdAt": "2026-11-01T00:00:00Z",
                             "updatedAt": None}]
    bare = ConversationOut.from_proto(conversation_pb2.Conversation(id="c2", tenant_id="t1", contact_id="k2"))
    assert (bare.last_message_preview, bare.tags) == (None, [])


def test_conversation_changes_are_validated() -> None:
    request = ConversationUpdateIn.model_validate({"status": "resolved"}).to_proto("c1")
    assert (request.conversation_id, request.status, request.HasField("priority")) == ("c1", "resolved", False)
    for body in ({}, {"status": None}, {"status": "closed"}, {"priority": "critical"}):
        with pytest.raises(ValidationError):
            ConversationUpdateIn.model_validate(body)


def test_assignment_takes_a_user_or_null_but_must_say_which() -> None:
    assert AssignIn.model_validate({"attendantId": "u-1"}).to_proto("c1").attendant_id == "u-1"
    assert AssignIn.model_validate({"attendantId": None}).to_proto("c1").attendant_id == ""
    for body in ({}, {"attendantId": ""}):
        with pytest.raises(ValidationError):
            AssignIn.model_validate(body)


def test_tags_need_a_name_and_a_hex_colour() -> None:
    created = TagCreateIn.model_validate({"name": "  VIP ", "color": "#ff8800"}).to_proto()
    assert (created.name, created.color) == ("VIP", "#ff8800")
    assert TagCreateIn.model_validate({"name": "late check-out"}).to_proto().color == ""
    renamed = TagUpdateIn.model_validate({"name": "VVIP"}).to_proto("tag-1")
    assert (renamed.tag_id, renamed.name, renamed.HasField("color")) == ("tag-1", "VVIP", False)
    bad: list[tuple[type[Any], dict[str, Any]]] = [
        (TagCreateIn, {"name": ""}), (TagCreateIn, {"name": "x" * 51}), (TagCreateIn, {"name": "a", "color": "red"}),
        (TagUpdateIn, {}), (TagUpdateIn, {"color": "#12345"})]
    for model, body in bad:
        with pytest.raises(ValidationError):
            model.model_validate(body)


def test_escalations_default_to_normal_priority_and_validate() -> None:
    raised = EscalationCreateIn.model_validate({"conversationId": "c1", "reason": " Noise in 204 "}).to_proto()
    assert (raised.conversation_id, raised.reason, raised.priority) == ("c1", "Noise in 204", "normal")
    for body in ({"conversationId": "c1", "reason": ""}, {"conversationId": "c1", "reason": "x", "priority": "p0"},
                 {"reason": "x"}):
        with pytest.raises(ValidationError):
            EscalationCreateIn.model_validate(body)
    assert EscalationResolveIn().to_proto("e1").note == ""
    assert EscalationResolveIn.model_validate({"note": "moved room"}).to_proto("e1").note == "moved room"
    out = EscalationOut.from_proto(conversation_pb2.Escalation(id="e1", tenant_id="t1", conversation_id="c1",
                                                               reason="r", priority="high", status="open"))
    assert out.model_dump(by_alias=True)["acknowledgedBy"] is None


def test_contacts_take_a_name_and_an_international_number() -> None:
    created = ContactCreateIn.model_validate({"name": "José", "phone": "+351 910000001".replace(" ", "")}).to_proto()
    assert (created.name, created.phone) == ("José", "351910000001")
    assert ContactUpdateIn.model_validate({"phone": "16505551234"}).to_proto("k1").phone == "16505551234"
    for body in ({"name": "x", "phone": "12"}, {"name": "x", "phone": "0351910000001"}, {"name": "", "phone": "1"},
                 {"name": "x", "phone": "+1 650 555"}):
        with pytest.raises(ValidationError):
            ContactCreateIn.model_validate(body)
    with pytest.raises(ValidationError):
        ContactUpdateIn.model_validate({})


@pytest.mark.parametrize(("mime", "expected"), [
    ("image/jpeg", "image/jpeg"), ("Audio/OGG; codecs=opus", "audio/ogg"), ("", "application/octet-stream"),
    ("nonsense", "application/octet-stream"), ("text/html\r\nX-Evil: 1", "application/octet-stream")])
def test_media_type_is_sanitised(mime: str, expected: str) -> None:
    assert media_type(mime) == expected


def test_documents_are_attachments_with_their_filename_and_pictures_inline() -> None:
    assert content_disposition(filename="", mime_type="image/jpeg") == "inline"
    assert content_disposition(filename="", mime_type="image/svg+xml") == "attachment"
    assert content_disposition(filename="", mime_type="text/html") == "attachment"
    assert content_disposition(filename="fatura.pdf", mime_type="application/pdf") == (
        "attachment; filename=\"fatura.pdf\"; filename*=UTF-8''fatura.pdf")
    assert content_disposition(filename="Reserva São João.pdf", mime_type="application/pdf") == (
        "attachment; filename=\"Reserva So Joo.pdf\"; filename*=UTF-8''Reserva%20S%C3%A3o%20Jo%C3%A3o.pdf")
    assert safe_filename('../../etc/"pass;wd"\r\n') == "passwd"
    assert safe_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
