"""Events produced by the messaging service (topic messaging.events.v1, keyed by conversation id)."""

from __future__ import annotations

from typing import Any, Final

from eva_events.envelope import CamelModel
from eva_events.times import Instant

MESSAGE_RECEIVED: Final = "message.received"
MESSAGE_CREATED: Final = "message.created"
MESSAGE_STATUS_CHANGED: Final = "message.status_changed"  # the message, plus the failed status's `error`
MESSAGE_UPDATED: Final = "message.updated"  # the message changed otherwise (its media stored, a reaction)

EVENT_TYPES: Final = frozenset({MESSAGE_RECEIVED, MESSAGE_CREATED, MESSAGE_STATUS_CHANGED, MESSAGE_UPDATED})
"""Every event type on messaging.events.v1; the data of each is a MessageView."""


class ContactSnapshot(CamelModel):
    id: str
    wa_id: str | None = None
    name: str | None = None
    phone: str | None = None


class MediaView(CamelModel):
    """A media message's media as the REST API shows it; its bytes are at GET /api/messages/{id}/media once
    `status` is `ready`."""

    status: str
    mime_type: str | None = None
    size: int | None = None
    filename: str | None = None
    caption: str | None = None
    sha256: str | None = None
    error: str | None = None


class StatusChangeView(CamelModel):
    status: str
    at: Instant | None = None
    error: Any = None


class MessageView(CamelModel):
    """The message as the REST API shows it (GET /api/messages), field for field, plus the guest's `contact` on the
    events that announce a new message. Socket.io's `message:new` and `message:updated` carry exactly this."""

    id: str
    conversation_id: str
    contact_id: str
    wamid: str | None
    direction: str
    type: str
    status: str
    content: dict[str, Any]
    media: MediaView | None = None
    status_history: list[StatusChangeView] = []
    pricing_category: str | None = None
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    errors: Any = None
    reactions: list[Any] = []
    sent_at: Instant | None
    created_at: Instant
    updated_at: Instant | None = None
    contact: ContactSnapshot | None = None
