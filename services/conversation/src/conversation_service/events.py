"""Events of the conversation service (topic conversation.events.v1, keyed by conversation id).

The data is the conversation as the REST API shows it, with its contact, in camelCase.
"""

from __future__ import annotations

from datetime import datetime

from eva_events.envelope import CamelModel, EventEnvelope, make_event

from conversation_service.models import Contact, Conversation

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"


class ContactView(CamelModel):
    id: str
    tenant_id: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    phone: str | None
    created_at: datetime
    updated_at: datetime


class ConversationView(CamelModel):
    id: str
    tenant_id: str
    contact_id: str
    status: str
    assigned_to: str | None
    priority: str
    last_message_at: datetime | None
    window_expires_at: datetime | None
    unread_count: int
    phone_number_id: str | None
    created_at: datetime
    updated_at: datetime
    contact: ContactView


def contact_view(contact: Contact) -> ContactView:
    return ContactView(
        id=str(contact.id),
        tenant_id=contact.tenant_id,
        wa_id=contact.wa_id,
        user_id=contact.user_id,
        name=contact.name,
        phone=contact.phone,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def conversation_view(conversation: Conversation, contact: Contact) -> ConversationView:
    return ConversationView(
        id=str(conversation.id),
        tenant_id=conversation.tenant_id,
        contact_id=str(conversation.contact_id),
        status=conversation.status,
        assigned_to=conversation.assigned_to,
        priority=conversation.priority,
        last_message_at=conversation.last_message_at,
        window_expires_at=conversation.window_expires_at,
        unread_count=conversation.unread_count,
        phone_number_id=conversation.phone_number_id,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        contact=contact_view(contact),
    )


def conversation_event(event_type: str, conversation: Conversation, contact: Contact) -> EventEnvelope:
    return make_event(event_type, tenant_id=conversation.tenant_id, data=conversation_view(conversation, contact))
