"""Queries of the messaging service. Every statement names its tenant (row-level security is the backstop)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from eva_common.db import column_list, column_names, driver, jsonb_columns
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import MediaJob, Message, MessageStatus, ParkedStatus

# The statements every status webhook and every send runs, written directly (eva_common.db.driver) in the session's
# transaction. A row of `messages` comes back whole and becomes a Message outside the session's identity map (read
# only, never flushed). jsonb parameters travel as text.
MESSAGE_COLUMNS = column_list(Message)
MESSAGE_JSONB = jsonb_columns(Message)
_INSERTED = tuple(name for name in column_names(Message) if name not in ("created_at", "updated_at"))  # now()
_INSERT_ONCE = (
    f"INSERT INTO messages ({', '.join(_INSERTED)}) VALUES ("  # noqa: S608
    + ", ".join(f"${i}::text::jsonb" if name in MESSAGE_JSONB else f"${i}" for i, name in enumerate(_INSERTED, 1))
    + f") ON CONFLICT (tenant_id, wamid) DO NOTHING RETURNING {MESSAGE_COLUMNS}")
# Many messages of one tenant in one statement, the same columns as _INSERT_ONCE, the rows as a JSON array.
_INSERT_MANY = (
    f"INSERT INTO messages ({', '.join(_INSERTED)}) SELECT {', '.join(_INSERTED)} "  # noqa: S608
    "FROM jsonb_populate_recordset(NULL::messages, $1::text::jsonb) "
    f"ON CONFLICT (tenant_id, wamid) DO NOTHING RETURNING {MESSAGE_COLUMNS}")
_STORED_WAMIDS = "SELECT wamid FROM messages WHERE tenant_id = $1 AND wamid = ANY($2::text[])"
_TAKE_PARKED = (
    f"DELETE FROM parked_statuses WHERE tenant_id = $1 AND wamid = $2 RETURNING {column_list(ParkedStatus)}")  # noqa: S608
_LOCK_WAMID = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
_MESSAGE_BY_WAMID = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND wamid = $2"  # noqa: S608
_MESSAGE_BY_WAMID_FOR_UPDATE = f"{_MESSAGE_BY_WAMID} FOR UPDATE"
_MESSAGES_BY_WAMID_FOR_UPDATE = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND wamid = ANY($2::text[]) "  # noqa: S608
    "ORDER BY id FOR UPDATE")
_INSERT_STATUS = (
    "INSERT INTO message_statuses (tenant_id, message_id, wamid, status, occurred_at, recipient_id, errors, payload, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, now()) "
    "ON CONFLICT (message_id, status) DO NOTHING RETURNING id")
# The history's row and the message's move in one round trip: the INSERT in the WITH runs whether or not the UPDATE
# matches. The UPDATE keeps the first pricing category Meta gave.
_RECORD_AND_ADVANCE = (
    f"WITH recorded AS ({_INSERT_STATUS}) "  # noqa: S608
    "UPDATE messages SET status = $4, error = $9::text::jsonb, pricing_category = coalesce(pricing_category, $10), "
    f"updated_at = now() WHERE tenant_id = $1 AND id = $2 AND status = ANY($11::text[]) RETURNING {MESSAGE_COLUMNS}")


# Statuses of several locked messages (each at most once) in one round trip: every history row, and each message
# the caller found moving (or gaining its first pricing category) written with what the caller computed.
_RECORD_AND_WRITE_MANY = (
    "WITH input AS (SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], "
    "$7::text[], $8::text[], $9::boolean[], $10::text[], $11::text[], $12::text[]) WITH ORDINALITY AS i(message_id, "
    "wamid, status, occurred_at, recipient_id, errors, payload, writes, new_status, new_error, pricing, position)), "
    "recorded AS (INSERT INTO message_statuses (tenant_id, message_id, wamid, status, occurred_at, recipient_id, "
    "errors, payload, created_at) SELECT $1, message_id, wamid, status, occurred_at, recipient_id, errors::jsonb, "
    "payload::jsonb, now() FROM input ORDER BY position ON CONFLICT (message_id, status) DO NOTHING) "
    "UPDATE messages AS m SET status = i.new_status, error = i.new_error::jsonb, "
    "pricing_category = coalesce(m.pricing_category, i.pricing), updated_at = now() FROM input AS i "
    "WHERE i.writes AND m.tenant_id = $1 AND m.id = i.message_id "
    f"RETURNING i.position, {', '.join(f'm.{name}' for name in column_names(Message))}")


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def message_from_row(row: Mapping[str, Any]) -> Message:
    return Message(**dict(row))


def _status_arguments(status: MessageStatus) -> tuple[Any, ...]:
    return (status.tenant_id, status.message_id, status.wamid, status.status, status.occurred_at, status.recipient_id,
            json_text(status.errors), json_text(status.payload))


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_wamid(self, *, tenant_id: str, wamid: str) -> None:
        """Serializes, until the transaction ends, the writers of one (tenant, wamid): the insert of a message and
        the parking of its statuses, so a status never gets parked just after its message was stored."""
        await (await driver(self._session)).execute(_LOCK_WAMID, f"{tenant_id}\x1f{wamid}")

    async def stored_wamids(self, *, tenant_id: str, wamids: Iterable[str]) -> set[str]:
        """Which of these wamids the tenant has stored."""
        rows = await (await driver(self._session)).fetch(_STORED_WAMIDS, tenant_id, sorted(wamids))
        return {row[0] for row in rows}

    async def insert_once(self, message: Message) -> Message | None:
        """Inserts the message unless (tenant_id, wamid) is already stored; the unique key decides between racing
        writers. Returns the stored row, or None when it was a duplicate."""
        arguments = [json_text(getattr(message, name)) if name in MESSAGE_JSONB else getattr(message, name)
                     for name in _INSERTED]
        row = await (await driver(self._session)).fetchrow(_INSERT_ONCE, *arguments)
        return None if row is None else message_from_row(row)

    async def insert_many(self, messages: Sequence[Message]) -> list[Message]:
        """`insert_once` for many messages of the caller's tenant in one statement: the rows stored now, in no
        particular order (a wamid already stored, or a second copy in `messages`, is left out)."""
        if not messages:
            return []
        rows = json.dumps([{name: getattr(message, name) for name in _INSERTED} for message in messages],
                          ensure_ascii=False, default=_json_default)
        return [message_from_row(row) for row in await (await driver(self._session)).fetch(_INSERT_MANY, rows)]

    async def message(self, *, tenant_id: str, message_id: uuid.UUID) -> Message | None:
        statement = select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id)
        return (await self._session.exec(statement)).first()

    async def message_by_wamid_for_update(self, *, tenant_id: str, wamid: str) -> Message | None:
        statement = (
            select(Message).where(Message.tenant_id == tenant_id, Message.wamid == wamid)
            .with_for_update().execution_options(populate_existing=True)
        )
        return (await self._session.exec(statement)).first()

    async def set_reactions(
        self, *, tenant_id: str, message_id: uuid.UUID, reactions: list[dict[str, Any]]
    ) -> Message | None:
        statement = (
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.id) == message_id)
            .values(reactions=reactions or None, updated_at=sa.func.now())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def set_wamid(self, *, tenant_id: str, message_id: uuid.UUID, wamid: str) -> Message | None:
        """Gives an outbound message its wamid, unless it has one."""
        statement = (
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.id) == message_id, col(Message.wamid).is_(None))
            .values(wamid=wamid, updated_at=sa.func.now())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def messages_by_wamid_for_update(self, *, tenant_id: str, wamids: Iterable[str]) -> dict[str, Message]:
        """The tenant's stored messages with these wamids, locked until the transaction ends (in id order, so two
        such batches never wait for each other in a cycle)."""
        rows = await (await driver(self._session)).fetch(_MESSAGES_BY_WAMID_FOR_UPDATE, tenant_id, sorted(wamids))
        return {row["wamid"]: message_from_row(row) for row in rows}

    async def message_by_wamid(self, *, tenant_id: str, wamid: str, for_update: bool = False) -> Message | None:
        """The tenant's message with this wamid (written directly: every status webhook reads one), locked until the
        transaction ends when `for_update`."""
        statement = _MESSAGE_BY_WAMID_FOR_UPDATE if for_update else _MESSAGE_BY_WAMID
        row = await (await driver(self._session)).fetchrow(statement, tenant_id, wamid)
        return None if row is None else message_from_row(row)

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

    async def latest(self, *, tenant_id: str, conversation_id: uuid.UUID, limit: int) -> list[Message]:
        """The conversation's last `limit` messages by (sent_at, id), oldest first."""
        statement = (select(Message)
                     .where(Message.tenant_id == tenant_id, Message.conversation_id == conversation_id)
                     .order_by(col(Message.sent_at).desc(), col(Message.id).desc()).limit(limit))
        return list(reversed((await self._session.exec(statement)).all()))

    async def record_status(self, status: MessageStatus) -> bool:
        """Adds a status to the message's history; False when Meta already reported it (a redelivery)."""
        recorded = await (await driver(self._session)).fetchval(_INSERT_STATUS, *_status_arguments(status))
        return recorded is not None

    async def record_and_advance(
        self,
        status: MessageStatus,
        *,
        error: list[dict[str, Any]] | None,
        pricing_category: str | None,
        from_statuses: tuple[str, ...],
    ) -> Message | None:
        """Adds the status to the message's history and moves the message to it only from one of `from_statuses`
        (a conditional UPDATE, so concurrent writers cannot move it backwards), keeping the first pricing category;
        one statement. Returns the moved message, or None when it did not move (the history row is added either
        way, once per message and status)."""
        if not from_statuses:
            await self.record_status(status)
            return None
        row = await (await driver(self._session)).fetchrow(
            _RECORD_AND_ADVANCE, *_status_arguments(status), json_text(error), pricing_category, list(from_statuses))
        return None if row is None else message_from_row(row)

    async def record_and_write_many(
        self, tenant_id: str, rows: Sequence[tuple[MessageStatus, Message | None, str | None]]
    ) -> dict[int, Message]:
        """For messages the caller holds locked, each at most once: adds every status to its message's history
        (once per message and status) and, where the caller gives the message's next state (`Message`, with the
        moved status, its error, the pricing category to keep; None: unchanged), writes it, with the pricing
        category given (third) kept only when the message had none. One statement; the written rows by position."""
        if not rows:
            return {}
        statuses, nexts = [row[0] for row in rows], [row[1] for row in rows]
        fetched = await (await driver(self._session)).fetch(
            _RECORD_AND_WRITE_MANY, tenant_id,
            [status.message_id for status in statuses], [status.wamid for status in statuses],
            [status.status for status in statuses], [status.occurred_at for status in statuses],
            [status.recipient_id for status in statuses], [json_text(status.errors) for status in statuses],
            [json_text(status.payload) for status in statuses], [following is not None for following in nexts],
            [following.status if following else None for following in nexts],
            [json_text(following.error) if following else None for following in nexts],
            [row[2] for row in rows])
        written: dict[int, Message] = {}
        for row in fetched:
            fields = dict(row)
            written[int(fields.pop("position")) - 1] = message_from_row(fields)
        return written

    async def park_status(self, parked: ParkedStatus) -> bool:
        """Keeps a status whose message is not stored; False when it is already parked."""
        statement = (
            pg_insert(ParkedStatus)
            .values(**parked.model_dump(exclude={"id", "created_at"}))
            .on_conflict_do_nothing(index_elements=["tenant_id", "wamid", "status"])
            .returning(col(ParkedStatus.id))
        )
        return (await self._session.exec(statement)).first() is not None

    async def take_parked(self, *, tenant_id: str, wamid: str) -> list[ParkedStatus]:
        """Removes and returns the statuses parked for the wamid (in the caller's transaction)."""
        rows = await (await driver(self._session)).fetch(_TAKE_PARKED, tenant_id, wamid)
        return [ParkedStatus(**dict(row)) for row in rows]

    async def set_pricing_category(self, *, tenant_id: str, message_id: uuid.UUID, category: str) -> None:
        await self._session.exec(
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.id) == message_id,
                   col(Message.pricing_category).is_(None))
            .values(pricing_category=category)
        )

    async def history(
        self, *, tenant_id: str, message_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[MessageStatus]]:
        """Every status of the messages, oldest first (Meta's timestamp, then arrival)."""
        result: dict[uuid.UUID, list[MessageStatus]] = {key: [] for key in message_ids}
        if not message_ids:
            return result
        statement = (
            select(MessageStatus)
            .where(MessageStatus.tenant_id == tenant_id, col(MessageStatus.message_id).in_(list(message_ids)))
            .order_by(col(MessageStatus.occurred_at).asc().nulls_last(), col(MessageStatus.id))
        )
        for row in (await self._session.exec(statement)).all():
            result[row.message_id].append(row)
        return result

    async def history_of(self, message: Message) -> list[MessageStatus]:
        return (await self.history(tenant_id=message.tenant_id, message_ids=[message.id]))[message.id]

    async def add_media_job(self, job: MediaJob) -> None:
        statement = (
            pg_insert(MediaJob)
            .values(**job.model_dump(exclude={"id", "created_at", "updated_at"}))
            .on_conflict_do_nothing(index_elements=["message_id"])
        )
        await self._session.exec(statement)

    async def media_job(self, *, tenant_id: str, job_id: int) -> MediaJob | None:
        statement = select(MediaJob).where(MediaJob.tenant_id == tenant_id, MediaJob.id == job_id)
        return (await self._session.exec(statement)).first()

    async def media_job_of(self, *, tenant_id: str, message_id: uuid.UUID) -> MediaJob | None:
        statement = select(MediaJob).where(MediaJob.tenant_id == tenant_id, MediaJob.message_id == message_id)
        return (await self._session.exec(statement)).first()

    async def finish_media_job(
        self, *, tenant_id: str, job_id: int, state: str, attempts: int, error: str | None,
        retry_in: timedelta | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "state": state, "attempts": attempts, "last_error": error, "updated_at": sa.func.now()}
        if retry_in is not None:
            values["next_attempt_at"] = sa.func.now() + retry_in
        await self._session.exec(
            sa.update(MediaJob).where(col(MediaJob.tenant_id) == tenant_id, col(MediaJob.id) == job_id).values(**values)
        )

    async def set_media(self, *, tenant_id: str, message_id: uuid.UUID, media: dict[str, Any]) -> Message | None:
        statement = (
            sa.update(Message)
            .where(col(Message.tenant_id) == tenant_id, col(Message.id) == message_id)
            .values(media=media, updated_at=sa.func.now())
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Message | None = (await self._session.exec(statement)).scalars().first()
        return row


async def claim_media_jobs(session: AsyncSession, *, batch: int, lease_seconds: float) -> list[tuple[int, str]]:
    """Leases up to `batch` due media jobs of any tenant (a SECURITY DEFINER function: the worker does not know the
    tenants yet); returns (job id, tenant id) pairs."""
    rows = await (await driver(session)).fetch("SELECT job_id, tenant_id FROM claim_media_jobs($1, $2)",
                                               batch, lease_seconds)
    return [(int(row[0]), str(row[1])) for row in rows]


async def expire_parked_statuses(session: AsyncSession, *, max_age_seconds: float, batch: int) -> int:
    """Deletes up to `batch` statuses of any tenant parked more than `max_age_seconds` ago (a SECURITY DEFINER
    function: the job works across tenants); returns how many it deleted."""
    connection = await session.connection()
    deleted = await connection.scalar(
        sa.text("SELECT expire_parked_statuses(:max_age, :batch)"), {"max_age": max_age_seconds, "batch": batch})
    return int(deleted or 0)


async def count_parked_statuses(session: AsyncSession) -> int:
    """How many statuses are parked, all tenants together (a SECURITY DEFINER function)."""
    connection = await session.connection()
    return int(await connection.scalar(sa.text("SELECT count_parked_statuses()")) or 0)
