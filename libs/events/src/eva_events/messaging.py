"""Events produced by the messaging service (topic messaging.events.v1, keyed by conversation id)."""

from __future__ import annotations

from typing import Any, Final

from eva_events.envelope import CamelModel
from eva_events.times import Instant

MESSAGE_RECEIVED: Final = "message.received"
MESSAGE_CREATED: Final = "message.created"
MESSAGE_STATUS_CHANGED: Final = "message.status_changed"  # the message, plus the failed status's `error`
MESSAGE_UPDATED: Final = "message.updated"  # the message changed otherwise (its media stored, a reaction)
MESSAGE_READ: Final = "message.read"  # an attendant read a conversation's guest messages (data: MessagesRead)
TEMPLATE_UPDATED: Final = "template.updated"  # a message template changed (data: TemplateView; keyed by tenant id)

EVENT_TYPES: Final = frozenset({MESSAGE_RECEIVED, MESSAGE_CREATED, MESSAGE_STATUS_CHANGED, MESSAGE_UPDATED,
                                MESSAGE_READ, TEMPLATE_UPDATED})
"""Every event type on messaging.events.v1; the data of the message.* events but message.read is a MessageView."""

SOURCE_WHATSAPP: Final = "whatsapp"  # a guest's message, from Meta's webhook
SOURCE_EVA: Final = "eva"  # sent through Eva (an attendant, an API key, an automation)
SOURCE_BUSINESS_APP: Final = "business_app"  # a coexistence echo: sent from the WhatsApp Business app


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


class SenderView(CamelModel):
    """Who sent an outbound message: kind user | api_key | automation | business_app, its id and name."""

    kind: str
    id: str | None = None
    name: str | None = None


class MessagesRead(CamelModel):
    """`message.read`: an attendant (or key) read the conversation's guest messages up to `messageId`."""

    conversation_id: str
    message_id: str | None = None
    # Meta's time of the latest message read: the conversation's unread count resets when nothing newer came in.
    message_sent_at: Instant | None = None
    read_at: Instant
    read_by: SenderView | None = None
    marked: int = 0


class TemplateView(CamelModel):
    """A message template as GET /api/templates shows it."""

    id: str
    name: str
    language: str
    status: str
    category: str | None = None
    quality: str | None = None
    parameter_format: str | None = None
    components: list[Any] = []
    rejected_reason: str | None = None
    updated_at: Instant | None = None


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
    sender: SenderView | None = None  # outbound only
    source: str = SOURCE_WHATSAPP
    attempts: int = 0  # outbound: Graph API calls made for it
    read_at: Instant | None = None  # inbound: when an attendant read it
    category: str | None = None  # outbound templates: the template's category
