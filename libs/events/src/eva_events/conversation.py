"""Events produced by the conversation service (topic conversation.events.v1).

Keys: the conversation id for conversation and escalation events (tag attach/detach are `conversation.updated`), the
tag id for tag events, the contact id for contact events. The data is the object as the REST API shows it (GET
/api/conversations, /api/escalations, /api/tags, /api/contacts), field for field, in camelCase; a conversation
carries its contact and tags. The envelope's `tenantId` is the object's tenant.

Each event type belongs to one family, and each family carries one view: `EVENT_DATA` says which, so a consumer can
validate an event's data and a producer cannot pair a type with another family's object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

from eva_events.envelope import CamelModel
from eva_events.times import Instant

ConversationChange = Literal["conversation.created", "conversation.updated"]
AssignmentChange = Literal["conversation.assigned"]
EscalationChange = Literal["escalation.raised", "escalation.updated"]
TagChange = Literal["tag.created", "tag.updated", "tag.deleted"]
ContactChange = Literal["contact.created", "contact.updated"]

CONVERSATION_CREATED: Final[ConversationChange] = "conversation.created"
CONVERSATION_UPDATED: Final[ConversationChange] = "conversation.updated"
CONVERSATION_ASSIGNED: Final[AssignmentChange] = "conversation.assigned"
ESCALATION_RAISED: Final[EscalationChange] = "escalation.raised"
ESCALATION_UPDATED: Final[EscalationChange] = "escalation.updated"
TAG_CREATED: Final[TagChange] = "tag.created"
TAG_UPDATED: Final[TagChange] = "tag.updated"
TAG_DELETED: Final[TagChange] = "tag.deleted"
CONTACT_CREATED: Final[ContactChange] = "contact.created"
CONTACT_UPDATED: Final[ContactChange] = "contact.updated"


class ContactView(CamelModel):
    """The contact as the REST API shows it (its tenant is the event envelope's)."""

    id: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    phone: str | None
    created_at: Instant
    updated_at: Instant


class TagView(CamelModel):
    id: str
    name: str
    color: str
    created_at: Instant
    updated_at: Instant


class ConversationView(CamelModel):
    """The conversation as the REST API shows it, with its contact and tags. Socket.io's `conversation:updated`
    carries exactly this."""

    id: str
    tenant_id: str
    contact_id: str
    status: str
    assigned_to: str | None
    priority: str
    last_message_at: Instant | None
    last_message_preview: str | None = None
    last_inbound_at: Instant | None = None
    window_expires_at: Instant | None
    unread_count: int
    phone_number_id: str | None
    created_at: Instant
    updated_at: Instant
    contact: ContactView
    tags: list[TagView] = []


class ConversationAssigned(CamelModel):
    """Who the conversation is now assigned to (`attendantId` null: unassigned) and who had it before."""

    conversation_id: str
    attendant_id: str | None
    previous_attendant_id: str | None


class EscalationView(CamelModel):
    """The escalation as the REST API shows it. Socket.io's `escalation:raised` / `escalation:updated` carry it."""

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
    created_at: Instant
    acknowledged_at: Instant | None
    resolved_at: Instant | None


def _family(types: object, view: type[CamelModel]) -> dict[str, type[CamelModel]]:
    return dict.fromkeys(get_args(types), view)


EVENT_DATA: Final[Mapping[str, type[CamelModel]]] = {
    **_family(ConversationChange, ConversationView),
    **_family(AssignmentChange, ConversationAssigned),
    **_family(EscalationChange, EscalationView),
    **_family(TagChange, TagView),
    **_family(ContactChange, ContactView),
}
"""Every event type on conversation.events.v1 and the view its data is."""

EVENT_TYPES: Final = frozenset(EVENT_DATA)
