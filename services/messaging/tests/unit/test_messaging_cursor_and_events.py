"""The message event's shape (MessageView in camelCase with its contact)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from eva_events.messaging import MESSAGE_RECEIVED, ContactSnapshot
from eva_events.times import rfc3339
from messaging_service.events import message_event
from messaging_service.models import Message

MOMENT = datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)


def data_updated_at(message: Message) -> str | None:
    return rfc3339(message.updated_at) if message.updated_at else None


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
        "referral": None, "errors": None, "reactions": [], "sentAt": "2026-11-29T10:00:00.123Z",
        "createdAt": "2026-11-29T10:00:00.123Z", "updatedAt": data_updated_at(message),
        "contact": {"id": str(message.contact_id), "waId": "16505551234", "name": "José", "phone": "+16505551234"},
        "sender": None, "source": "whatsapp", "attempts": 0, "readAt": None, "category": None,
    }
    assert json.loads(event.to_bytes())["data"]["content"]["body"] == "Olá ☕"
