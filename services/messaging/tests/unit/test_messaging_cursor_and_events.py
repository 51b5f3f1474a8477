"""Opaque keyset cursors, and the message event's shape (MessageView in camelCase with its contact)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from eva_common.errors import InvalidArgument
from eva_events.messaging import MESSAGE_RECEIVED, ContactSnapshot
from messaging_service.cursor import MessageCursor
from messaging_service.events import message_event
from messaging_service.models import Message

MOMENT = datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)


def test_a_cursor_round_trips_and_is_bound_to_its_conversation() -> None:
    conversation, message = uuid.uuid4(), uuid.uuid4()
    token = MessageCursor(conversation_id=conversation, sent_at=MOMENT, message_id=message).encode()
    assert "=" not in token and "/" not in token and "+" not in token  # URL-safe
    decoded = MessageCursor.decode(token, conversation_id=conversation)
    assert (decoded.sent_at, decoded.message_id) == (MOMENT, message)
    with pytest.raises(InvalidArgument):
        MessageCursor.decode(token, conversation_id=uuid.uuid4())


@pytest.mark.parametrize("token", [
    "garbage!", "", base64.urlsafe_b64encode(b"{}").decode(), base64.urlsafe_b64encode(b"[1]").decode(),
    base64.urlsafe_b64encode(json.dumps({"c": "x", "s": "y", "i": "z"}).encode()).decode(),
])
def test_a_bad_cursor_is_an_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        MessageCursor.decode(token, conversation_id=uuid.uuid4())
    assert raised.value.code == "INVALID_CURSOR"


def data_updated_at(message: Message) -> str | None:
    return message.updated_at.isoformat().replace("+00:00", "Z") if message.updated_at else None


def test_the_received_event_carries_the_message_and_its_contact_in_camel_case() -> None:
    message = Message(id=uuid.uuid4(), tenant_id="tenant-a", conversation_id=uuid.uuid4(), contact_id=uuid.uuid4(),
                      wamid="wamid.A1", direction="inbound", type="text", status="RECEIVED",
                      content={"body": "Olá ☕"}, sent_at=MOMENT, created_at=MOMENT)
    contact = ContactSnapshot(id=str(message.contact_id), wa_id="16505551234", name="José", phone="+16505551234")
    event = message_event(MESSAGE_RECEIVED, message, contact=contact)
    assert event.type == "message.received" and event.tenant_id == "tenant-a"
    assert event.data == {
        "id": str(message.id), "conversationId": str(message.conversation_id), "contactId": str(message.contact_id),
        "wamid": "wamid.A1", "direction": "inbound", "type": "text", "status": "RECEIVED",
        "content": {"body": "Olá ☕"}, "media": None, "statusHistory": [], "pricingCategory": None, "context": None,
        "referral": None, "errors": None, "reactions": [], "sentAt": "2026-11-29T10:00:00.123456Z",
        "createdAt": "2026-11-29T10:00:00.123456Z", "updatedAt": data_updated_at(message),
        "contact": {"id": str(message.contact_id), "waId": "16505551234", "name": "José", "phone": "+16505551234"},
    }
    assert json.loads(event.to_bytes())["data"]["content"]["body"] == "Olá ☕"
