"""Conversation bodies: the conversation with its contact."""

from __future__ import annotations

from eva.conversation.v1 import conversation_pb2

from gateway.schemas.base import CamelModel, optional


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
    window_expires_at: str | None
    unread_count: int
    created_at: str | None
    updated_at: str | None
    contact: ContactOut | None

    @classmethod
    def from_proto(cls, conversation: conversation_pb2.Conversation) -> ConversationOut:
        return cls(
            id=conversation.id, tenant_id=conversation.tenant_id, contact_id=conversation.contact_id,
            status=conversation.status, assigned_to=optional(conversation.assigned_to),
            priority=optional(conversation.priority), last_message_at=optional(conversation.last_message_at),
            window_expires_at=optional(conversation.window_expires_at), unread_count=conversation.unread_count,
            created_at=optional(conversation.created_at), updated_at=optional(conversation.updated_at),
            contact=ContactOut.from_proto(conversation.contact) if conversation.HasField("contact") else None,
        )
