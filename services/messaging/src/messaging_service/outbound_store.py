"""Queries of the outbound path: idempotency keys, the sender's jobs and the outbound message's progress. Every
statement names its tenant (row-level security is the backstop); `claim_outbound_jobs` is the one cross-tenant
lease, a SECURITY DEFINER function."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from eva_common.db import column_list, column_names, driver, jsonb_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import IdempotencyKey, Message, OutboundJob
from messaging_service.repository import MESSAGE_COLUMNS, MESSAGE_JSONB, json_text, message_from_row

PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"

# The sender's statements (every send reads and updates its job and message twice), written directly in the
# session's transaction; the objects they return are outside the session's identity map (read only).
_JOB_COLUMNS = column_list(OutboundJob)
_JOB_COLUMN_NAMES = frozenset(column_names(OutboundJob))
_JOB_JSONB = jsonb_columns(OutboundJob)
_JOB = f"SELECT {_JOB_COLUMNS} FROM outbound_jobs WHERE tenant_id = $1 AND id = $2 FOR UPDATE"  # noqa: S608
_JOB_OF = f"SELECT {_JOB_COLUMNS} FROM outbound_jobs WHERE tenant_id = $1 AND message_id = $2 FOR UPDATE"  # noqa: S608
_MESSAGE_COLUMN_NAMES = frozenset(column_names(Message))
_MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND id = $2"  # noqa: S608
_MESSAGE_FOR_UPDATE = _MESSAGE + " FOR UPDATE"
_ADD_JOB = "INSERT INTO outbound_jobs (tenant_id, message_id, conversation_id, priority) VALUES ($1, $2, $3, $4)"
_CLAIM_KEY = ("INSERT INTO idempotency_keys (tenant_id, key, request_hash, message_id) VALUES ($1, $2, $3, $4) "
              "ON CONFLICT (tenant_id, key) DO NOTHING RETURNING key")
_FORGET_KEY = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND created_at < $3"


def _assignments(
    values: dict[str, Any], *, columns: frozenset[str], jsonb: frozenset[str]
) -> tuple[list[str], list[Any]]:
    """[`col = $3`, …] for an UPDATE whose $1 and $2 are the tenant and the row's id, and the values in order."""
    parts: list[str] = []
    arguments: list[Any] = []
    for name, value in values.items():
        if name not in columns or name in ("tenant_id", "id", "updated_at"):
            raise ValueError(f"not an updatable column: {name}")
        arguments.append(json_text(value) if name in jsonb else value)
        parts.append(f"{name} = ${len(arguments) + 2}" + ("::text::jsonb" if name in jsonb else ""))
    return parts, arguments


async def claim_outbound_jobs(
    session: AsyncSession, *, batch: int, lease_seconds: float
) -> list[tuple[int, str, bool]]:
    """Leases up to `batch` due jobs (the head of each conversation, attendants first); (job id, tenant id,
    recovered) where `recovered` means its previous sender's lease ran out mid-send."""
    rows = await (await driver(session)).fetch(
        "SELECT job_id, tenant_id, recovered FROM claim_outbound_jobs($1, $2) ORDER BY priority, job_id",
        batch, lease_seconds)
    return [(int(row[0]), str(row[1]), bool(row[2])) for row in rows]


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
        return await (await driver(self._session)).fetchval(
            _CLAIM_KEY, tenant_id, key, request_hash, message_id) is not None

    async def forget_idempotency_key(self, *, tenant_id: str, key: str, older_than: datetime) -> None:
        await (await driver(self._session)).execute(_FORGET_KEY, tenant_id, key, older_than)

    # --- messages ----------------------------------------------------------------------------------------------

    async def message(self, *, tenant_id: str, message_id: uuid.UUID, for_update: bool = False) -> Message | None:
        row = await (await driver(self._session)).fetchrow(
            _MESSAGE_FOR_UPDATE if for_update else _MESSAGE, tenant_id, message_id)
        return None if row is None else message_from_row(row)

    async def update_message(self, *, tenant_id: str, message_id: uuid.UUID, **values: Any) -> Message | None:
        assignments, arguments = _assignments(values, columns=_MESSAGE_COLUMN_NAMES, jsonb=MESSAGE_JSONB)
        changes = ", ".join([*assignments, "updated_at = now()"])
        row = await (await driver(self._session)).fetchrow(
            f"UPDATE messages SET {changes} WHERE tenant_id = $1 AND id = $2 RETURNING {MESSAGE_COLUMNS}",  # noqa: S608
            tenant_id, message_id, *arguments)
        return None if row is None else message_from_row(row)

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
        """Queues the message (state, attempts and times from the table's defaults)."""
        await (await driver(self._session)).execute(
            _ADD_JOB, job.tenant_id, job.message_id, job.conversation_id, job.priority)

    async def job(self, *, tenant_id: str, job_id: int) -> OutboundJob | None:
        row = await (await driver(self._session)).fetchrow(_JOB, tenant_id, job_id)
        return None if row is None else OutboundJob(**dict(row))

    async def job_of(self, *, tenant_id: str, message_id: uuid.UUID) -> OutboundJob | None:
        row = await (await driver(self._session)).fetchrow(_JOB_OF, tenant_id, message_id)
        return None if row is None else OutboundJob(**dict(row))

    async def update_job(self, *, tenant_id: str, job_id: int, retry_in: timedelta | None = None,
                         **values: Any) -> None:
        assignments, arguments = _assignments(values, columns=_JOB_COLUMN_NAMES, jsonb=_JOB_JSONB)
        if retry_in is not None:
            arguments.append(retry_in)
            assignments.append(f"next_attempt_at = now() + ${len(arguments) + 2}::interval")
        changes = ", ".join([*assignments, "updated_at = now()"])
        await (await driver(self._session)).execute(
            f"UPDATE outbound_jobs SET {changes} WHERE tenant_id = $1 AND id = $2",  # noqa: S608
            tenant_id, job_id, *arguments)

    async def pending_jobs(self, *, tenant_id: str) -> int:
        statement = select(sa.func.count()).select_from(OutboundJob).where(
            col(OutboundJob.tenant_id) == tenant_id, col(OutboundJob.state).in_((PENDING, SENDING)))
        return int((await self._session.exec(statement)).one())
