"""Queries of the outbound path: idempotency keys, the sender's jobs and the outbound message's progress. Every
statement names its tenant (row-level security is the backstop); `claim_outbound_jobs` is the one cross-tenant
lease, a SECURITY DEFINER function."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import IdempotencyKey, Message, OutboundJob

PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"


async def claim_outbound_jobs(
    session: AsyncSession, *, batch: int, lease_seconds: float
) -> list[tuple[int, str, bool]]:
    """Leases up to `batch` due jobs (the head of each conversation, attendants first); (job id, tenant id,
    recovered) where `recovered` means its previous sender's lease ran out mid-send."""
    connection = await session.connection()
    rows = await connection.execute(
        sa.text("SELECT job_id, tenant_id, recovered FROM claim_outbound_jobs(:batch, :lease) "
                "ORDER BY priority, job_id"),
        {"batch": batch, "lease": lease_seconds})
    return [(int(row[0]), str(row[1]), bool(row[2])) for row in rows.all()]


class OutboundStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # --- idempotency keys --------------------------------------------------------------------------------------

    async def idempotency_key(self, *, tenant_id: str, key: str) -> IdempotencyKey | None:
        statement = select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
        return (await self._session.exec(statement)).first()

    async def claim_idempotency_key(self, *, tenant_id: str, key: str, request_hash: str,
                                    message_id: uuid.UUID) -> bool:
        """Records the key for the message; False when another request holds it (the unique key waits for that
        request's transaction, so racing retries agree on one winner)."""
        statement = (
            pg_insert(IdempotencyKey)
            .values(tenant_id=tenant_id, key=key, request_hash=request_hash, message_id=message_id)
            .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
            .returning(col(IdempotencyKey.key))
        )
        return (await self._session.exec(statement)).first() is not None

    async def forget_idempotency_key(self, *, tenant_id: str, key: str, older_than: datetime) -> None:
        await self._session.exec(sa.delete(IdempotencyKey).where(
            col(IdempotencyKey.tenant_id) == tenant_id, col(IdempotencyKey.key) == key,
            col(IdempotencyKey.created_at) < older_than))

    # --- messages ----------------------------------------------------------------------------------------------

    async def message(self, *, tenant_id: str, message_id: uuid.UUID, for_update: bool = False) -> Message | None:
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id)
        if for_update:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self._session.exec(statement)).first()

    async def update_message(self, *, tenant_id: str, message_id: uuid.UUID, **values: Any) -> Message | None:
        statement = (
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.id) == message_id)
            .values(**values, updated_at=sa.func.now())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def latest_inbound(
        self, *, tenant_id: str, conversation_id: uuid.UUID, up_to: tuple[datetime, uuid.UUID] | None = None,
    ) -> Message | None:
        """The conversation's latest guest message (at or before `up_to`, a (sent_at, id) position)."""
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.conversation_id == conversation_id,
                                          Message.direction == "inbound")
        if up_to is not None:
            statement = statement.where(sa.tuple_(col(Message.sent_at), col(Message.id)) <= sa.tuple_(*up_to))
        statement = statement.order_by(col(Message.sent_at).desc(), col(Message.id).desc()).limit(1)
        return (await self._session.exec(statement)).first()

    async def mark_inbound_read(self, *, tenant_id: str, conversation_id: uuid.UUID,
                                up_to: tuple[datetime, uuid.UUID], read_at: datetime) -> int:
        """Sets read_at on the conversation's unread guest messages up to `up_to`; returns how many."""
        result = await self._session.exec(
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.conversation_id) == conversation_id,
                   col(Message.direction) == "inbound", col(Message.read_at).is_(None),
                   sa.tuple_(col(Message.sent_at), col(Message.id)) <= sa.tuple_(*up_to))
            .values(read_at=read_at)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- jobs --------------------------------------------------------------------------------------------------

    async def add_job(self, job: OutboundJob) -> None:
        self._session.add(job)
        await self._session.flush()

    async def job(self, *, tenant_id: str, job_id: int) -> OutboundJob | None:
        statement = (select(OutboundJob).where(OutboundJob.tenant_id == tenant_id, OutboundJob.id == job_id)
                     .with_for_update().execution_options(populate_existing=True))
        return (await self._session.exec(statement)).first()

    async def job_of(self, *, tenant_id: str, message_id: uuid.UUID) -> OutboundJob | None:
        statement = (select(OutboundJob).where(OutboundJob.tenant_id == tenant_id,
                                               OutboundJob.message_id == message_id)
                     .with_for_update().execution_options(populate_existing=True))
        return (await self._session.exec(statement)).first()

    async def update_job(self, *, tenant_id: str, job_id: int, retry_in: timedelta | None = None,
                         **values: Any) -> None:
        if retry_in is not None:
            values["next_attempt_at"] = sa.func.now() + retry_in
        await self._session.exec(
            sa.update(OutboundJob).where(col(OutboundJob.tenant_id) == tenant_id, col(OutboundJob.id) == job_id)
            .values(**values, updated_at=sa.func.now()))

    async def pending_jobs(self, *, tenant_id: str) -> int:
        statement = select(sa.func.count()).select_from(OutboundJob).where(
            col(OutboundJob.tenant_id) == tenant_id, col(OutboundJob.state).in_((PENDING, SENDING)))
        return int((await self._session.exec(statement)).one())
