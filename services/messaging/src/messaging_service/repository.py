"""Queries of the messaging service. Every statement names its tenant (row-level security is the backstop)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import Message, MessageStatus, ParkedStatus


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def wamid_exists(self, *, tenant_id: str, wamid: str) -> bool:
        statement = select(col(Message.id)).where(Message.tenant_id == tenant_id, Message.wamid == wamid)
        return (await self._session.exec(statement)).first() is not None

    async def insert_once(self, message: Message) -> Message | None:
        """Inserts the message unless (tenant_id, wamid) is already stored; the unique key decides between racing
        writers. Returns the stored row, or None when it was a duplicate."""
        values = message.model_dump(exclude={"created_at", "updated_at"})
        statement = (
            pg_insert(Message)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "wamid"])
            .returning(Message)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def message(self, *, tenant_id: str, message_id: uuid.UUID) -> Message | None:
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id)
        return (await self._session.exec(statement)).first()

    async def message_by_wamid(self, *, tenant_id: str, wamid: str) -> Message | None:
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.wamid == wamid)
        return (await self._session.exec(statement)).first()

    async def page(
        self,
        *,
        tenant_id: str,
        conversation_id: uuid.UUID,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Message]:
        """Messages of a conversation ordered by (sent_at, id), strictly after the keyset position `after`."""
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.conversation_id == conversation_id)
        if after is not None:
            statement = statement.where(sa.tuple_(col(Message.sent_at), col(Message.id)) > sa.tuple_(*after))
        statement = statement.order_by(col(Message.sent_at), col(Message.id)).limit(limit)
        return list((await self._session.exec(statement)).all())

    async def record_status(self, status: MessageStatus) -> bool:
        """Adds a status to the message's history; False when Meta already reported it (a redelivery)."""
        statement = (
            pg_insert(MessageStatus)
            .values(**status.model_dump(exclude={"id", "created_at"}))
            .on_conflict_do_nothing(index_elements=["message_id", "status"])
            .returning(col(MessageStatus.id))
        )
        return (await self._session.exec(statement)).first() is not None

    async def advance_status(
        self,
        *,
        tenant_id: str,
        message_id: uuid.UUID,
        status: str,
        error: list[dict[str, Any]] | None,
        from_statuses: tuple[str, ...],
    ) -> Message | None:
        """Moves the message to `status` only from one of `from_statuses` (one conditional UPDATE, so concurrent
        status webhooks cannot move it backwards). Returns the moved message, or None when it did not move."""
        if not from_statuses:
            return None
        statement = (
            sa.update(Message)
            .where(
                col(Message.tenant_id) == tenant_id,
                col(Message.id) == message_id,
                col(Message.status).in_(from_statuses),
            )
            .values(status=status, error=error, updated_at=sa.func.now())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def park_status(self, parked: ParkedStatus) -> bool:
        """Keeps a status whose message is not stored; False when it is already parked."""
        statement = (
            pg_insert(ParkedStatus)
            .values(**parked.model_dump(exclude={"id", "created_at"}))
            .on_conflict_do_nothing(index_elements=["tenant_id", "wamid", "status"])
            .returning(col(ParkedStatus.id))
        )
        return (await self._session.exec(statement)).first() is not None
