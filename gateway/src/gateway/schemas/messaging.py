"""Message bodies: the message as the REST API (and the realtime events) show it, and its pages."""

from __future__ import annotations

from typing import Any

from eva.messaging.v1 import messaging_pb2

from gateway.schemas.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CamelModel, optional, parse_json_object

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "MessageOut", "MessagePage", "parse_content"]


def parse_content(content_json: str) -> dict[str, Any]:
    """The typed content (Meta's shape for the message type); an empty or unreadable document is `{}`."""
    return parse_json_object(content_json)


class MessageOut(CamelModel):
    id: str
    conversation_id: str
    contact_id: str | None
    wamid: str | None
    direction: str
    type: str
    status: str
    content: dict[str, Any]
    sent_at: str | None
    created_at: str | None

    @classmethod
    def from_proto(cls, message: messaging_pb2.Message) -> MessageOut:
        return cls(
            id=message.id, conversation_id=message.conversation_id, contact_id=optional(message.contact_id),
            wamid=optional(message.wamid), direction=message.direction, type=message.type, status=message.status,
            content=parse_content(message.content_json), sent_at=optional(message.sent_at),
            created_at=optional(message.created_at),
        )


class MessagePage(CamelModel):
    items: list[MessageOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: messaging_pb2.ListMessagesResponse) -> MessagePage:
        return cls(items=[MessageOut.from_proto(item) for item in page.items], next_cursor=optional(page.next_cursor))
