"""The conversation service's events on conversation.events.v1: its rows as the contract's views
(eva_events.conversation, which says the keys, the event types and the data of each)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_events.conversation import (
    CONVERSATION_ASSIGNED,
    ContactChange,
    ContactView,
    ConversationAssigned,
    ConversationChange,
    ConversationView,
    EscalationChange,
    EscalationView,
    TagChange,
    TagView,
)
from eva_events.envelope import EventEnvelope, make_event

from conversation_service.models import Contact, Conversation, Escalation, Tag


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
    event_type: ConversationChange, conversation: Conversation, contact: Contact, tags: Sequence[Tag] = ()
) -> EventEnvelope:
    return make_event(event_type, tenant_id=conversation.tenant_id,
                      data=conversation_view(conversation, contact, tags))


def assigned_event(conversation: Conversation, previous_attendant_id: str | None) -> EventEnvelope:
    data = ConversationAssigned(conversation_id=str(conversation.id), attendant_id=conversation.assigned_to,
                                previous_attendant_id=previous_attendant_id)
    return make_event(CONVERSATION_ASSIGNED, tenant_id=conversation.tenant_id, data=data)


def escalation_event(event_type: EscalationChange, escalation: Escalation) -> EventEnvelope:
    return make_event(event_type, tenant_id=escalation.tenant_id, data=escalation_view(escalation))


def tag_event(event_type: TagChange, tag: Tag) -> EventEnvelope:
    return make_event(event_type, tenant_id=tag.tenant_id, data=tag_view(tag))


def contact_event(event_type: ContactChange, contact: Contact) -> EventEnvelope:
    return make_event(event_type, tenant_id=contact.tenant_id, data=contact_view(contact))
