"""Queries of the conversation service. Every statement names its tenant (row-level security is the backstop)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.ids import new_id
from conversation_service.models import STATUS_OPEN, STATUS_RESOLVED, Contact, Conversation, InboxEntry


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # contacts

    async def contact(self, *, tenant_id: str, contact_id: uuid.UUID) -> Contact | None:
        statement = select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id)
        return (await self._session.exec(statement)).first()

    async def contact_by_wa_id(self, *, tenant_id: str, wa_id: str) -> Contact | None:
        statement = select(Contact).where(Contact.tenant_id == tenant_id, Contact.wa_id == wa_id)
        return (await self._session.exec(statement)).first()

    async def contact_by_user_id(self, *, tenant_id: str, user_id: str) -> Contact | None:
        statement = select(Contact).where(Contact.tenant_id == tenant_id, Contact.user_id == user_id)
        return (await self._session.exec(statement)).first()

    async def insert_contact(
        self, *, tenant_id: str, wa_id: str | None, user_id: str | None, name: str | None, phone: str | None
    ) -> Contact | None:
        """Inserts a contact; None when a concurrent insert already took its wa_id or user_id."""
        statement = (
            pg_insert(Contact)
            .values(id=new_id(), tenant_id=tenant_id, wa_id=wa_id, user_id=user_id, name=name, phone=phone)
            .on_conflict_do_nothing()
            .returning(Contact)
        )
        row: Contact | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def update_contact(self, *, tenant_id: str, contact_id: uuid.UUID, changes: dict[str, Any]) -> Contact:
        statement = (
            sa.update(Contact)
            .where(col(Contact.tenant_id) == tenant_id, col(Contact.id) == contact_id)
            .values(**changes, updated_at=sa.func.now())
            .returning(Contact)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Contact = (await self._session.exec(statement)).scalars().one()
        return row

    # conversations

    async def conversation(self, *, tenant_id: str, conversation_id: uuid.UUID) -> Conversation | None:
        statement = select(Conversation).where(
            Conversation.tenant_id == tenant_id, Conversation.id == conversation_id
        )
        return (await self._session.exec(statement)).first()

    async def upsert_active_conversation(
        self,
        *,
        tenant_id: str,
        contact_id: uuid.UUID,
        message_at: datetime,
        window_expires_at: datetime,
        phone_number_id: str | None,
    ) -> tuple[Conversation, bool]:
        """The contact's open or pending conversation (its window extended), or a new open one.

        One statement, so concurrent callers agree: the partial unique index (one non-resolved conversation per
        contact) arbitrates, the loser updates the winner's row. Returns (conversation, created).
        """
        insert = pg_insert(Conversation).values(
            id=new_id(),
            tenant_id=tenant_id,
            contact_id=contact_id,
            status=STATUS_OPEN,
            last_message_at=message_at,
            window_expires_at=window_expires_at,
            phone_number_id=phone_number_id,
        )
        statement: ReturningInsert[Conversation, bool] = (
            insert.on_conflict_do_update(
                index_elements=["tenant_id", "contact_id"],
                index_where=sa.text(f"status <> '{STATUS_RESOLVED}'"),
                set_={
                    "window_expires_at": sa.func.greatest(
                        col(Conversation.window_expires_at), insert.excluded.window_expires_at
                    ),
                    "phone_number_id": sa.func.coalesce(
                        insert.excluded.phone_number_id, col(Conversation.phone_number_id)
                    ),
                    "updated_at": sa.func.now(),
                },
            )
            # xmax is 0 only on a row this statement inserted (PostgreSQL's usual "was it an insert?" test).
            .returning(Conversation, sa.literal_column("(xmax = 0)").label("inserted"))
            .execution_options(populate_existing=True)
        )
        row = (await self._session.exec(statement)).one()
        conversation: Conversation = row[0]
        return conversation, bool(row[1])

    async def record_message(
        self,
        *,
        tenant_id: str,
        conversation_id: uuid.UUID,
        sent_at: datetime,
        inbound: bool,
        window_expires_at: datetime | None,
    ) -> Conversation | None:
        """Moves last_message_at forward; an inbound message also counts as unread and extends the window."""
        values: dict[str, Any] = {
            "last_message_at": sa.func.greatest(col(Conversation.last_message_at), sent_at),
            "updated_at": sa.func.now(),
        }
        if inbound:
            values["unread_count"] = col(Conversation.unread_count) + 1
        if window_expires_at is not None:
            values["window_expires_at"] = sa.func.greatest(col(Conversation.window_expires_at), window_expires_at)
        statement = (
            sa.update(Conversation)
            .where(col(Conversation.tenant_id) == tenant_id, col(Conversation.id) == conversation_id)
            .values(**values)
            .returning(Conversation)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Conversation | None = (await self._session.exec(statement)).scalars().first()
        return row

    # inbox

    async def claim_event(self, *, consumer: str, event_id: str) -> bool:
        """Records that `consumer` applies `event_id`; False when it already did (a redelivery)."""
        statement = (
            pg_insert(InboxEntry)
            .values(consumer=consumer, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(col(InboxEntry.event_id))
        )
        return (await self._session.exec(statement)).first() is not None
