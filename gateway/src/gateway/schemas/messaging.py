"""Message bodies: the message as the REST API (and the realtime events) show it, and its pages."""

from __future__ import annotations

import json
from typing import Any

from eva.messaging.v1 import messaging_pb2
from pydantic import Field

from gateway.schemas.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CamelModel, optional, parse_json_object

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "MediaOut", "MessageOut", "MessagePage", "StatusChangeOut",
           "parse_content", "parse_json_value"]


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
        )


class MessagePage(CamelModel):
    items: list[MessageOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: messaging_pb2.ListMessagesResponse) -> MessagePage:
        return cls(items=[MessageOut.from_proto(item) for item in page.items], next_cursor=optional(page.next_cursor))
