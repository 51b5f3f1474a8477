"""proto → JSON mapping: camelCase, empty proto strings as null, content parsed, secrets never carried."""

from __future__ import annotations

import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from eva.tenant.v1 import tenant_pb2
from gateway.schemas.auth import LoginIn, RegisterIn
from gateway.schemas.conversation import ConversationOut
from gateway.schemas.messaging import MessageOut, MessagePage, parse_content
from gateway.schemas.tenant import WhatsAppCredentialsIn, WhatsAppCredentialsOut
from pydantic import ValidationError


def test_message_json_is_camel_case_with_parsed_content() -> None:
    message = messaging_pb2.Message(
        id="m1", tenant_id="t1", conversation_id="c1", contact_id="k1", wamid="wamid.X", direction="inbound",
        type="text", status="RECEIVED", content_json='{"body": "Olá"}', sent_at="2026-11-29T10:00:00Z",
        created_at="2026-11-29T10:00:01Z", updated_at="2026-11-29T10:00:02Z",
    )
    body = MessageOut.from_proto(message).model_dump(by_alias=True)
    assert body == {"id": "m1", "conversationId": "c1", "contactId": "k1", "wamid": "wamid.X",
                    "direction": "inbound", "type": "text", "status": "RECEIVED", "content": {"body": "Olá"},
                    "media": None, "statusHistory": [], "pricingCategory": None, "context": None, "referral": None,
                    "errors": None, "reactions": [], "sentAt": "2026-11-29T10:00:00Z",
                    "createdAt": "2026-11-29T10:00:01Z", "updatedAt": "2026-11-29T10:00:02Z",
                    "sender": None, "source": "whatsapp", "attempts": 0, "readAt": None, "category": None}


def test_unset_proto_strings_are_null_and_the_last_page_has_no_cursor() -> None:
    page = messaging_pb2.ListMessagesResponse(items=[messaging_pb2.Message(
        id="m2", conversation_id="c1", direction="outbound", type="text", status="PENDING")])
    body = MessagePage.from_proto(page).model_dump(by_alias=True)
    assert body["nextCursor"] is None
    assert (body["items"][0]["wamid"], body["items"][0]["sentAt"], body["items"][0]["content"]) == (None, None, {})


@pytest.mark.parametrize(("raw", "parsed"), [("", {}), ("not json", {}), ("[1]", {"value": [1]}),
                                              ('{"caption": "x"}', {"caption": "x"})])
def test_content_parsing_never_fails(raw: str, parsed: dict[str, object]) -> None:
    assert parse_content(raw) == parsed


def test_conversation_carries_its_contact_when_present() -> None:
    with_contact = conversation_pb2.Conversation(
        id="c1", tenant_id="t1", contact_id="k1", status="open", unread_count=3,
        contact=conversation_pb2.Contact(id="k1", tenant_id="t1", wa_id="351910000000", name="Guest"))
    body = ConversationOut.from_proto(with_contact).model_dump(by_alias=True)
    assert body["unreadCount"] == 3 and body["assignedTo"] is None
    assert body["contact"]["waId"] == "351910000000" and body["contact"]["userId"] is None
    without = ConversationOut.from_proto(conversation_pb2.Conversation(id="c2", tenant_id="t1", contact_id="k2"))
    assert without.contact is None


def test_whatsapp_view_shows_secret_state_only() -> None:
    view = tenant_pb2.WhatsAppCredentialsView(
        configured=True, phone_number_id="106540352242922", waba_id="102290129340398",
        access_token=tenant_pb2.SecretState(set=True, last4="9f3a"), app_secret=tenant_pb2.SecretState(set=False),
        verify_token=tenant_pb2.SecretState(set=True, last4="oken"), updated_at="2026-11-29T10:00:00Z")
    body = WhatsAppCredentialsOut.from_proto(view).model_dump(by_alias=True)
    assert body["accessToken"] == {"set": True, "last4": "9f3a"}
    assert body["appSecret"] == {"set": False, "last4": None}
    assert body["displayPhoneNumber"] is None and body["phoneNumberId"] == "106540352242922"


def test_request_bodies_accept_camel_case_and_validate() -> None:
    credentials = WhatsAppCredentialsIn.model_validate({
        "phoneNumberId": " 106540352242922 ", "wabaId": "102290129340398", "accessToken": "EAAG",
        "appSecret": "s", "verifyToken": "v"})
    request = credentials.to_proto()
    assert (request.phone_number_id, request.display_phone_number) == ("106540352242922", "")
    with pytest.raises(ValidationError):
        WhatsAppCredentialsIn.model_validate({"phoneNumberId": "abc", "wabaId": "1", "accessToken": "a",
                                              "appSecret": "s", "verifyToken": "v"})
    login = LoginIn.model_validate({"email": "Demo@Eva.Local", "password": "x", "tenantSlug": "hotel-sol"})
    assert (login.email, login.to_proto().tenant_slug) == ("demo@eva.local", "hotel-sol")  # as accounts are keyed
    assert LoginIn.model_validate({"email": "demo@eva.local", "password": "x"}).to_proto().tenant_slug == ""


@pytest.mark.parametrize("email", ["plain", "a@b", "a..b@hotel.example", "a b@hotel.example", "@hotel.example",
                                   "x" * 65 + "@hotel.example"])
def test_malformed_emails_are_refused(email: str) -> None:
    with pytest.raises(ValidationError):
        RegisterIn.model_validate({"tenantName": "Hotel", "name": "Ana", "email": email, "password": "12345678"})
