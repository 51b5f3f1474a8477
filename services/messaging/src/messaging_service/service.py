"""Read use cases of the messaging service: a conversation's messages (keyset pages) and one message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import InvalidArgument, NotFound

from messaging_service.cursor import MessageCursor
from messaging_service.ids import parse_id
from messaging_service.models import Message
from messaging_service.repository import MessageRepository

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class ConversationDirectory(Protocol):
    async def conversation_exists(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> bool:
        """Whether the conversation is the tenant's, asked of its owner on the caller's behalf."""
        ...


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[Message]
    next_cursor: str | None


class MessagingService:
    def __init__(self, *, sessions: SessionFactory, conversations: ConversationDirectory) -> None:
        self._sessions = sessions
        self._conversations = conversations

    async def list_messages(
        self, *, principal: Principal, conversation_id: str, limit: int = 0, cursor: str = "", tenant_id: str = ""
    ) -> MessagePage:
        """A page of the conversation's messages, oldest first (sent_at, then id). NotFound when the conversation
        is not the caller's tenant's, whether or not it exists elsewhere."""
        tenant = principal.tenant_scope(tenant_id)
        if limit < 0:
            raise InvalidArgument("limit must be between 1 and 100", code="VALIDATION_FAILED")
        size = min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        key = parse_id(conversation_id)
        if key is None:
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        after = MessageCursor.decode(cursor, conversation_id=key) if cursor else None
        async with transaction(self._sessions, tenant_id=tenant) as session:
            rows = await MessageRepository(session).page(
                tenant_id=tenant,
                conversation_id=key,
                after=(after.sent_at, after.message_id) if after else None,
                limit=size + 1,
            )
        # Rows of this tenant prove the conversation is its own; an empty page needs the conversation's owner.
        if not rows and not await self._conversations.conversation_exists(
            principal=principal, tenant_id=tenant, conversation_id=str(key)
        ):
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = MessageCursor(conversation_id=key, sent_at=last.sent_at, message_id=last.id).encode()
        return MessagePage(items=rows[:size], next_cursor=next_cursor)

    async def get_message(self, *, principal: Principal, message_id: str, tenant_id: str = "") -> Message:
        tenant = principal.tenant_scope(tenant_id)
        key = parse_id(message_id)
        if key is not None:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                message = await MessageRepository(session).message(tenant_id=tenant, message_id=key)
            if message is not None:
                return message
        raise NotFound("message not found", code="MESSAGE_NOT_FOUND")
