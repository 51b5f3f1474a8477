"""Read use cases of the messaging service: a conversation's messages (keyset pages) and one message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound
from eva_common.identity import SCOPE_MESSAGES_READ
from eva_common.ids import parse_id
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size

from messaging_service import media_state
from messaging_service.media_store import MEDIA_CHUNK_SIZE, MediaStore, media_key
from messaging_service.models import Message, MessageStatus
from messaging_service.repository import MessageRepository

READ_SCOPE = SCOPE_MESSAGES_READ  # what an API key needs to read messages and their media


class ConversationDirectory(Protocol):
    async def conversation_exists(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> bool:
        """Whether the conversation is the tenant's, asked of its owner on the caller's behalf."""
        ...


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message with every status Meta reported for it, oldest first."""

    message: Message
    history: list[MessageStatus]


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[MessageRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MediaDownload:
    """A stored media file, ready to stream."""

    mime_type: str
    size: int
    filename: str
    chunks: AsyncIterator[bytes]


class MessagingService:
    def __init__(
        self, *, sessions: SessionFactory, conversations: ConversationDirectory, media_store: MediaStore,
        chunk_size: int = MEDIA_CHUNK_SIZE,
    ) -> None:
        self._sessions = sessions
        self._conversations = conversations
        self._media_store = media_store
        self._chunk_size = chunk_size

    async def list_messages(
        self, *, principal: Principal, conversation_id: str, limit: int = 0, cursor: str = "", tenant_id: str = "",
        latest: bool = False,
    ) -> MessagePage:
        """A page of the conversation's messages, oldest first (sent_at, then id). NotFound when the conversation
        is not the caller's tenant's, whether or not it exists elsewhere. `latest`: its last `limit` messages
        (still oldest first; no cursor)."""
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(READ_SCOPE)
        size = page_size(limit)
        key = parse_id(conversation_id)
        if key is None:
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        list_kind = f"messages:{key}"  # a cursor resumes only the conversation it was handed out for
        if latest and cursor:
            raise InvalidArgument("the latest messages have no cursor", code="VALIDATION_FAILED")
        after = decode_cursor(cursor, kind=list_kind, timed=True, uuid_id=True)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = MessageRepository(session)
            if latest:
                rows = await repository.latest(tenant_id=tenant, conversation_id=key, limit=size)
            else:
                rows = await repository.page(
                    tenant_id=tenant,
                    conversation_id=key,
                    after=(after.time(), after.uuid()) if after else None,
                    limit=size + 1,
                )
            histories = await repository.history(tenant_id=tenant, message_ids=[row.id for row in rows[:size]])
        # Rows of this tenant prove the conversation is its own; an empty page needs the conversation's owner.
        if not rows and not await self._conversations.conversation_exists(
            principal=principal, tenant_id=tenant, conversation_id=str(key)
        ):
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor(Position(list_kind, str(last.id), last.sent_at))
        items = [MessageRecord(message=row, history=histories[row.id]) for row in rows[:size]]
        return MessagePage(items=items, next_cursor=next_cursor)

    async def get_message(self, *, principal: Principal, message_id: str, tenant_id: str = "") -> MessageRecord:
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(READ_SCOPE)
        key = parse_id(message_id)
        if key is not None:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = MessageRepository(session)
                message = await repository.message(tenant_id=tenant, message_id=key)
                if message is not None:
                    history = await repository.history(tenant_id=tenant, message_ids=[message.id])
                    return MessageRecord(message=message, history=history[message.id])
        raise NotFound("message not found", code="MESSAGE_NOT_FOUND")

    async def get_media(self, *, principal: Principal, message_id: str) -> MediaDownload:
        """The stored media of one of the caller's tenant's messages. NotFound for another tenant's message (or one
        without media); FailedPrecondition MEDIA_NOT_READY while it is pending or after its download failed."""
        tenant = principal.tenant_scope("")
        record = await self.get_message(principal=principal, message_id=message_id)
        media = record.message.media
        if not media:
            raise NotFound("this message has no media", code="MEDIA_NOT_FOUND")
        if media.get("status") != media_state.READY:
            raise FailedPrecondition(f"the media is {media.get('status')}, not ready", code="MEDIA_NOT_READY")
        key = media_key(tenant_id=tenant, message_id=record.message.id)
        if not await self._media_store.exists(key):
            raise NotFound("the media file is missing", code="MEDIA_NOT_FOUND")
        return MediaDownload(
            mime_type=str(media.get("mimeType") or "application/octet-stream"),
            size=int(media.get("size") or 0),
            filename=str(media.get("filename") or ""),
            chunks=self._media_store.read(key, chunk_size=self._chunk_size),
        )
