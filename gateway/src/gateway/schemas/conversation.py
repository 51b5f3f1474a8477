"""Conversation bodies: the conversation with its contact, its pages, and the changes an attendant makes.

A conversation and a contact are, field for field, eva_events.conversation's ConversationView and ContactView,
which the conversation service's events (and Socket.io's `conversation:updated`) carry
(tests/unit/test_gateway_conversation_contract.py)."""

from __future__ import annotations

from typing import Literal

from eva.conversation.v1 import conversation_pb2
from pydantic import Field, model_validator

from gateway.schemas.base import CamelModel, optional, require_some_field
from gateway.schemas.tags import TagOut

ConversationStatus = Literal["open", "pending", "resolved"]
Priority = Literal["low", "normal", "high", "urgent"]


class ContactOut(CamelModel):
    id: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    phone: str | None
    created_at: str | None
    updated_at: str | None

    @classmethod
    def from_proto(cls, contact: conversation_pb2.Contact) -> ContactOut:
        return cls(
            id=contact.id, wa_id=optional(contact.wa_id), user_id=optional(contact.user_id),
            name=optional(contact.name), phone=optional(contact.phone), created_at=optional(contact.created_at),
            updated_at=optional(contact.updated_at),
        )


class ConversationOut(CamelModel):
    id: str
    tenant_id: str
    contact_id: str
    status: str
    assigned_to: str | None
    priority: str | None
    last_message_at: str | None
    last_message_preview: str | None = Field(
        default=None, description='The last text, cut to 120 characters, else "[image]", "[audio]", ...')
    last_inbound_at: str | None = None
    window_expires_at: str | None
    unread_count: int
    phone_number_id: str | None = Field(description="The business number (Meta's phone_number_id) replies leave from")
    created_at: str | None
    updated_at: str | None
    contact: ContactOut | None
    tags: list[TagOut] = Field(default_factory=list)

    @classmethod
    def from_proto(cls, conversation: conversation_pb2.Conversation) -> ConversationOut:
        return cls(
            id=conversation.id, tenant_id=conversation.tenant_id, contact_id=conversation.contact_id,
            status=conversation.status, assigned_to=optional(conversation.assigned_to),
            priority=optional(conversation.priority), last_message_at=optional(conversation.last_message_at),
            last_message_preview=optional(conversation.last_message_preview),
            last_inbound_at=optional(conversation.last_inbound_at),
            window_expires_at=optional(conversation.window_expires_at), unread_count=conversation.unread_count,
            phone_number_id=optional(conversation.phone_number_id),
            created_at=optional(conversation.created_at), updated_at=optional(conversation.updated_at),
            contact=ContactOut.from_proto(conversation.contact) if conversation.HasField("contact") else None,
            tags=[TagOut.from_proto(tag) for tag in conversation.tags],
        )


class ConversationPage(CamelModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given."""

    status: ConversationStatus | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> ConversationUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self, conversation_id: str) -> conversation_pb2.UpdateConversationRequest:
        changes = {name: value for name in ("status", "priority") if (value := getattr(self, name)) is not None}
        return conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, **changes)


class AssignIn(CamelModel):
    attendant_id: str | None = Field(min_length=1, max_length=128,
                                     description="An active user of the same tenant, or null to unassign")

    def to_proto(self, conversation_id: str) -> conversation_pb2.AssignConversationRequest:
        return conversation_pb2.AssignConversationRequest(conversation_id=conversation_id,
                                                          attendant_id=self.attendant_id or "")
