"""Events of the conversation service (topic conversation.events.v1).

Keys: the conversation id for conversation and escalation events (and tag attach/detach, which are
`conversation.updated`), the tag id for tag events, the contact id for contact events. The data is the object as the
REST API shows it, in camelCase; a conversation carries its contact and tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from eva_events.envelope import CamelModel, EventEnvelope, make_event

from conversation_service.models import Contact, Conversation, Escalation, Tag

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_ASSIGNED = "conversation.assigned"
ESCALATION_RAISED = "escalation.raised"
ESCALATION_UPDATED = "escalation.updated"
TAG_CREATED = "tag.created"
TAG_UPDATED = "tag.updated"
TAG_DELETED = "tag.deleted"
CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"


class ContactView(CamelModel):
    """The contact as the REST API shows it (its tenant is the event envelope's)."""

    id: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    phone: str | None
    created_at: datetime
    updated_at: datetime


class TagView(CamelModel):
    id: str
    name: str
    color: str
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
    last_message_preview: str | None = None
    last_inbound_at: datetime | None = None
    window_expires_at: datetime | None
    unread_count: int
    phone_number_id: str | None
    created_at: datetime
    updated_at: datetime
    contact: ContactView
    tags: list[TagView] = []


class ConversationAssigned(CamelModel):
    conversation_id: str
    attendant_id: str | None
    previous_attendant_id: str | None


class EscalationView(CamelModel):
    id: str
    tenant_id: str
    conversation_id: str
    reason: str
    priority: str
    status: str
    raised_by: str | None
    acknowledged_by: str | None
    resolved_by: str | None
    note: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


def contact_view(contact: Contact) -> ContactView:
    return ContactView(
        id=str(contact.id),
        wa_id=contact.wa_id,
        user_id=contact.user_id,
        name=contact.name,
        phone=contact.phone,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def tag_view(tag: Tag) -> TagView:
    return TagView(id=str(tag.id), name=tag.name, color=tag.color, created_at=tag.created_at,
                   updated_at=tag.updated_at)


def conversation_view(conversation: Conversation, contact: Contact, tags: Sequence[Tag] = ()) -> ConversationView:
    return ConversationView(
        id=str(conversation.id),
        tenant_id=conversation.tenant_id,
        contact_id=str(conversation.contact_id),
        status=conversation.status,
        assigned_to=conversation.assigned_to,
        priority=conversation.priority,
        last_message_at=conversation.last_message_at,
        last_message_preview=conversation.last_message_preview,
        last_inbound_at=conversation.last_inbound_at,
        window_expires_at=conversation.window_expires_at,
        unread_count=conversation.unread_count,
        phone_number_id=conversation.phone_number_id,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        contact=contact_view(contact),
        tags=[tag_view(tag) for tag in tags],
    )


def escalation_view(escalation: Escalation) -> EscalationView:
    return EscalationView(
        id=str(escalation.id),
        tenant_id=escalation.tenant_id,
        conversation_id=str(escalation.conversation_id),
        reason=escalation.reason,
        priority=escalation.priority,
        status=escalation.status,
        raised_by=escalation.raised_by,
        acknowledged_by=escalation.acknowledged_by,
        resolved_by=escalation.resolved_by,
        note=escalation.note,
        created_at=escalation.created_at,
        acknowledged_at=escalation.acknowledged_at,
        resolved_at=escalation.resolved_at,
    )


def conversation_event(
    event_type: str, conversation: Conversation, contact: Contact, tags: Sequence[Tag] = ()
) -> EventEnvelope:
    return make_event(event_type, tenant_id=conversation.tenant_id,
                      data=conversation_view(conversation, contact, tags))


def assigned_event(conversation: Conversation, previous_attendant_id: str | None) -> EventEnvelope:
    data = ConversationAssigned(conversation_id=str(conversation.id), attendant_id=conversation.assigned_to,
                                previous_attendant_id=previous_attendant_id)
    return make_event(CONVERSATION_ASSIGNED, tenant_id=conversation.tenant_id, data=data)


def escalation_event(event_type: str, escalation: Escalation) -> EventEnvelope:
    return make_event(event_type, tenant_id=escalation.tenant_id, data=escalation_view(escalation))


def tag_event(event_type: str, tag: Tag) -> EventEnvelope:
    return make_event(event_type, tenant_id=tag.tenant_id, data=tag_view(tag))


def contact_event(event_type: str, contact: Contact) -> EventEnvelope:
    return make_event(event_type, tenant_id=contact.tenant_id, data=contact_view(contact))
