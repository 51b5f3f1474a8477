"""What the /n8n API answers: messages and conversations, field for field as the gateway's REST API shows them
(`GET /api/messages`, `GET /api/conversations/{id}`), from the peers' protos."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2


def _optional(value: str) -> str | None:
    return value or None


def _json(document: str) -> Any:
    if not document:
        return None
    try:
        return json.loads(document)
    except ValueError:
        return None


def _object(document: str) -> dict[str, Any] | None:
    value = _json(document)
    return value if isinstance(value, dict) and value else None


def message_view(message: messaging_pb2.Message) -> dict[str, Any]:
    media = message.media
    reactions = _json(message.reactions_json)
    return {
        "id": message.id, "conversationId": message.conversation_id, "contactId": _optional(message.contact_id),
        "wamid": _optional(message.wamid), "direction": message.direction, "type": message.type,
        "status": message.status, "content": _object(message.content_json) or {},
        "media": {"status": media.status, "mimeType": _optional(media.mime_type), "size": media.size or None,
                  "filename": _optional(media.filename), "caption": _optional(media.caption),
                  "sha256": _optional(media.sha256), "error": _optional(media.error)}
        if message.HasField("media") else None,
        "statusHistory": [{"status": change.status, "at": _optional(change.occurred_at),
                           "error": _json(change.error_json)} for change in message.status_history],
        "pricingCategory": _optional(message.pricing_category), "context": _object(message.context_json),
        "referral": _object(message.referral_json), "errors": _json(message.error_json),
        "reactions": reactions if isinstance(reactions, list) else [],
        "sentAt": _optional(message.sent_at), "createdAt": _optional(message.created_at),
        "updatedAt": _optional(message.updated_at),
        "sender": {"kind": message.sender.kind, "id": _optional(message.sender.id),
                   "name": _optional(message.sender.name)} if message.HasField("sender") else None,
        "source": message.source or "whatsapp", "attempts": message.attempts, "readAt": _optional(message.read_at),
        "category": _optional(message.category),
    }


def contact_view(contact: conversation_pb2.Contact) -> dict[str, Any]:
    return {"id": contact.id, "waId": _optional(contact.wa_id), "userId": _optional(contact.user_id),
            "name": _optional(contact.name), "phone": _optional(contact.phone),
            "createdAt": _optional(contact.created_at), "updatedAt": _optional(contact.updated_at)}


def tag_view(tag: conversation_pb2.Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "color": _optional(tag.color), "createdAt": _optional(tag.created_at),
            "updatedAt": _optional(tag.updated_at)}


def window_view(expires_at: str, now: datetime | None = None) -> dict[str, Any]:
    """The 24-hour customer-service window: open (free-form messages go through) until `expiresAt`; closed, only
    templates go through."""
    if not expires_at:
        return {"open": False, "expiresAt": None}
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return {"open": False, "expiresAt": expires_at}
    return {"open": moment > (now or datetime.now(UTC)), "expiresAt": expires_at}


def conversation_view(conversation: conversation_pb2.Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id, "tenantId": conversation.tenant_id, "contactId": conversation.contact_id,
        "status": conversation.status, "assignedTo": _optional(conversation.assigned_to),
        "priority": _optional(conversation.priority), "lastMessageAt": _optional(conversation.last_message_at),
        "lastMessagePreview": _optional(conversation.last_message_preview),
        "lastInboundAt": _optional(conversation.last_inbound_at),
        "windowExpiresAt": _optional(conversation.window_expires_at),
        "window": window_view(conversation.window_expires_at),
        "unreadCount": conversation.unread_count, "phoneNumberId": _optional(conversation.phone_number_id),
        "createdAt": _optional(conversation.created_at), "updatedAt": _optional(conversation.updated_at),
        "contact": contact_view(conversation.contact) if conversation.HasField("contact") else None,
        "tags": [tag_view(tag) for tag in conversation.tags],
    }
