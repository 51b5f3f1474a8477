"""Message bodies: the message as the REST API (and the realtime events) show it, and its pages."""

from __future__ import annotations

import json
from typing import Any, Literal

from eva.messaging.v1 import messaging_pb2
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from gateway.schemas.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CamelModel, optional, parse_json_object

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "MediaOut", "MessageOut", "MessagePage", "ReadOut",
           "SendMessageIn", "SenderOut", "StatusChangeOut", "parse_content", "parse_json_value"]


def parse_content(content_json: str) -> dict[str, Any]:
    """The typed content (Meta's shape for the message type); an empty or unreadable document is `{}`."""
    return parse_json_object(content_json)


def parse_json_value(document: str) -> Any:
    """Any JSON value carried as a proto string (Meta's `errors` arrays, `context`, `referral`); None when empty
    or unreadable."""
    if not document:
        return None
    try:
        return json.loads(document)
    except ValueError:
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class MediaOut(CamelModel):
    """The media of an image, audio, video, document or sticker message; its bytes are at
    `GET /api/messages/{id}/media` once `status` is `ready`."""

    status: str
    mime_type: str | None
    size: int | None
    filename: str | None
    caption: str | None
    sha256: str | None
    error: str | None

    @classmethod
    def from_proto(cls, media: messaging_pb2.Media) -> MediaOut:
        return cls(status=media.status, mime_type=optional(media.mime_type), size=media.size or None,
                   filename=optional(media.filename), caption=optional(media.caption),
                   sha256=optional(media.sha256), error=optional(media.error))


class StatusChangeOut(CamelModel):
    status: str
    at: str | None
    error: Any = None

    @classmethod
    def from_proto(cls, change: messaging_pb2.StatusChange) -> StatusChangeOut:
        return cls(status=change.status, at=optional(change.occurred_at), error=parse_json_value(change.error_json))


class SenderOut(CamelModel):
    kind: str = Field(description="user | api_key | automation | business_app")
    id: str | None = None
    name: str | None = None

    @classmethod
    def from_proto(cls, sender: messaging_pb2.Sender) -> SenderOut:
        return cls(kind=sender.kind, id=optional(sender.id), name=optional(sender.name))


class MessageOut(CamelModel):
    id: str
    conversation_id: str
    contact_id: str | None
    wamid: str | None
    direction: str
    type: str
    status: str
    content: dict[str, Any]
    media: MediaOut | None = None
    status_history: list[StatusChangeOut] = Field(default_factory=list)
    pricing_category: str | None = None
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    errors: Any = None
    reactions: list[Any] = Field(default_factory=list, description=(
        "Guests' current reactions: [{from, emoji, reactionWamid, reactedAt}], one per guest"))
    sent_at: str | None
    created_at: str | None
    updated_at: str | None = None
    sender: SenderOut | None = Field(default=None, description="Outbound: who sent it")
    source: str = Field(default="whatsapp", description=(
        "whatsapp (a guest), eva (sent through Eva), business_app (sent from the WhatsApp Business app)"))
    attempts: int = Field(default=0, description="Outbound: how many times Eva called Meta for it")
    read_at: str | None = Field(default=None, description="Inbound: when an attendant read it")
    category: str | None = Field(default=None, description="Outbound templates: the template's category")

    @classmethod
    def from_proto(cls, message: messaging_pb2.Message) -> MessageOut:
        return cls(
            id=message.id, conversation_id=message.conversation_id, contact_id=optional(message.contact_id),
            wamid=optional(message.wamid), direction=message.direction, type=message.type, status=message.status,
            content=parse_content(message.content_json),
            media=MediaOut.from_proto(message.media) if message.HasField("media") else None,
            status_history=[StatusChangeOut.from_proto(change) for change in message.status_history],
            pricing_category=optional(message.pricing_category),
            context=parse_json_object(message.context_json) or None,
            referral=parse_json_object(message.referral_json) or None,
            errors=parse_json_value(message.error_json),
            reactions=_list(parse_json_value(message.reactions_json)),
            sent_at=optional(message.sent_at), created_at=optional(message.created_at),
            updated_at=optional(message.updated_at),
            sender=SenderOut.from_proto(message.sender) if message.HasField("sender") else None,
            source=message.source or "whatsapp", attempts=message.attempts, read_at=optional(message.read_at),
            category=optional(message.category),
        )


class MessagePage(CamelModel):
    items: list[MessageOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: messaging_pb2.ListMessagesResponse) -> MessagePage:
        return cls(items=[MessageOut.from_proto(item) for item in page.items], next_cursor=optional(page.next_cursor))


OUTBOUND_TYPES = ("text", "image", "audio", "video", "document", "sticker", "location", "contacts", "template",
                  "interactive", "reaction")


class SendMessageIn(BaseModel):
    """`POST /api/messages`: the type's object mirrors Meta's own (camelCase), under the key named by `type`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    conversation_id: str = Field(min_length=1, max_length=128)
    type: Literal["text", "image", "audio", "video", "document", "sticker", "location", "contacts", "template",
                  "interactive", "reaction"]
    reply_to_message_id: str | None = Field(default=None, max_length=128,
                                            description="A message of the conversation this one quotes")
    priority: Literal["attendant", "automation", "bulk"] | None = Field(default=None, description=(
        "Attendants' replies leave first (the default for users and keys); bulk sends last"))
    text: dict[str, Any] | None = Field(default=None, description="{body, previewUrl?}")
    image: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?}")
    audio: dict[str, Any] | None = Field(default=None, description="{mediaId | link}")
    video: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?}")
    document: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?, filename?}")
    sticker: dict[str, Any] | None = Field(default=None, description="{mediaId | link}")
    location: dict[str, Any] | None = Field(default=None, description="{latitude, longitude, name?, address?}")
    contacts: list[Any] | None = Field(default=None, description="Meta's contact objects")
    template: dict[str, Any] | None = Field(default=None, description="{name, language: {code}, components?}")
    interactive: dict[str, Any] | None = Field(default=None, description=(
        "reply buttons {type: button}, lists {type: list}, call-to-action URL {type: cta_url}"))
    reaction: dict[str, Any] | None = Field(default=None, description="{messageId, emoji} (emoji \"\" removes it)")

    def content(self) -> Any:
        return getattr(self, self.type)


class ReadOut(CamelModel):
    conversation_id: str
    message_id: str | None = Field(description="The latest guest message marked read")
    marked: int = Field(description="How many guest messages became read")
    read_at: str
    receipt_sent: bool = Field(description="Whether Meta's read receipt was sent (the tenant's read-receipt policy)")

    @classmethod
    def from_proto(cls, read: messaging_pb2.MarkReadResponse) -> ReadOut:
        return cls(conversation_id=read.conversation_id, message_id=optional(read.message_id), marked=read.marked,
                   read_at=read.read_at, receipt_sent=read.receipt_sent)
