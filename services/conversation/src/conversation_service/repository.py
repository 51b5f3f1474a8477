"""Queries of the conversation service. Every statement names its tenant (row-level security is the backstop)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from eva_common.db import column_list, column_names, driver
from eva_common.ids import new_id
from eva_common.paging import Position
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.models import (
    STATUS_OPEN,
    STATUS_RESOLVED,
    Contact,
    Conversation,
    ConversationTag,
    Escalation,
    Tag,
)

# The statements every guest message and every answer runs (resolve, record, announce, look up), written directly in
# the session's transaction: building and executing them through the ORM cost more CPU than PostgreSQL spends on
# them. The objects they return are outside the session's identity map: read only.
_CONTACT_COLUMNS = column_list(Contact)
_CONVERSATION_COLUMNS = column_list(Conversation)
_TAG_FIELDS = column_names(Tag)
_TAG_COLUMNS = ", ".join(f"t.{name}" for name in _TAG_FIELDS)
_CONTACTS = f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE tenant_id = $1 AND id = ANY($2::uuid[])"  # noqa: S608
_CONTACT_BY_WA_ID = f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE tenant_id = $1 AND wa_id = $2"  # noqa: S608
_CONTACT_BY_USER_ID = f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE tenant_id = $1 AND user_id = $2"  # noqa: S608
_CONVERSATION = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 AND id = $2"  # noqa: S608
_UPSERT_ACTIVE = (
    "INSERT INTO conversations AS c (id, tenant_id, contact_id, status, last_message_at, window_expires_at, "
    "phone_number_id) VALUES ($1, $2, $3, $4, $5, $6, $7) "
    f"ON CONFLICT (tenant_id, contact_id) WHERE status <> '{STATUS_RESOLVED}' DO UPDATE SET "
    "window_expires_at = greatest(c.window_expires_at, excluded.window_expires_at), "
    "phone_number_id = coalesce(excluded.phone_number_id, c.phone_number_id), updated_at = now() "
    f"RETURNING {', '.join(f'c.{name}' for name in column_names(Conversation))}, (xmax = 0) AS inserted")
# A guest's message: the contact's latest conversation reopened when it is resolved, else its open or pending one
# upserted (as _UPSERT_ACTIVE), in one round trip. The INSERT runs only when nothing was reopened.
_CONVERSATION_RETURNED = ", ".join(column_names(Conversation))
_OPEN_FOR_MESSAGE = (
    "WITH reopened AS ("  # noqa: S608
    "UPDATE conversations SET status = $5, last_message_at = greatest(last_message_at, $3), "
    "window_expires_at = greatest(window_expires_at, $4), phone_number_id = coalesce($6, phone_number_id), "
    "updated_at = now() WHERE tenant_id = $1 AND status = $7 AND id = (SELECT id FROM conversations "
    "WHERE tenant_id = $1 AND contact_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1) "
    f"RETURNING {_CONVERSATION_COLUMNS}, false AS inserted, true AS reopened), "
    "upserted AS (INSERT INTO conversations AS c (id, tenant_id, contact_id, status, last_message_at, "
    "window_expires_at, phone_number_id) SELECT $8::uuid, $1::text, $2::uuid, $5::text, $3::timestamptz, "
    "$4::timestamptz, $6::text WHERE NOT EXISTS (SELECT 1 FROM reopened) "
    f"ON CONFLICT (tenant_id, contact_id) WHERE status <> '{STATUS_RESOLVED}' DO UPDATE SET "
    "window_expires_at = greatest(c.window_expires_at, excluded.window_expires_at), "
    "phone_number_id = coalesce(excluded.phone_number_id, c.phone_number_id), updated_at = now() "
    f"RETURNING {', '.join(f'c.{name}' for name in column_names(Conversation))}, (xmax = 0) AS inserted, "
    f"false AS reopened) SELECT {_CONVERSATION_RETURNED}, inserted, reopened FROM reopened "
    f"UNION ALL SELECT {_CONVERSATION_RETURNED}, inserted, reopened FROM upserted")
_LOCK_ACTIVE = (
    "SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = ANY($2::uuid[]) "
    f"AND status <> '{STATUS_RESOLVED}' ORDER BY id FOR UPDATE")
_CONTACTS_BY_WA_ID = f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE tenant_id = $1 AND wa_id = ANY($2::text[])"  # noqa: S608
_RECORD_MESSAGE = (
    "UPDATE conversations SET last_message_at = greatest(last_message_at, $3), "  # noqa: S608
    "last_message_preview = CASE WHEN last_message_at <= $3 THEN $4 ELSE last_message_preview END, "
    "updated_at = now(), unread_count = unread_count + CASE WHEN $5 THEN 1 ELSE 0 END, "
    "last_inbound_at = CASE WHEN $5 THEN greatest(last_inbound_at, $3) ELSE last_inbound_at END, "
    "window_expires_at = CASE WHEN $6::timestamptz IS NULL THEN window_expires_at "
    "ELSE greatest(window_expires_at, $6) END "
    f"WHERE tenant_id = $1 AND id = $2 RETURNING {_CONVERSATION_COLUMNS}")
_TAGS_OF = (
    f"SELECT ct.conversation_id AS of_conversation, {_TAG_COLUMNS} FROM conversation_tags ct "  # noqa: S608
    "JOIN tags t ON t.id = ct.tag_id WHERE ct.tenant_id = $1 AND t.tenant_id = $1 "
    "AND ct.conversation_id = ANY($2::uuid[]) ORDER BY lower(t.name)")


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """The inbox's filters (all optional; combined with AND). `tag_id` is already resolved from an id or name."""

    status: str | None = None
    assigned_to: str | None = None
    unassigned: bool = False
    tag_id: uuid.UUID | None = None
    q: str | None = None
    updated_since: datetime | None = None


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards in `text` taken literally (escape character: backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_PHONE_PUNCTUATION = frozenset("+ -().")
# A search matching at most this many contacts is answered from their ids (found through the trigram indexes);
# a broader one filters the list as it is read in order, where matches are dense enough to fill a page quickly.
SELECTIVE_SEARCH_MAX = 500


@dataclass(frozen=True, slots=True)
class ContactSearch:
    """A case-insensitive substring search over a contact's name or phone. A query of digits and phone punctuation
    ("+49 151-12", "(151) 12") matches the phone by its digits."""

    name_pattern: str
    phone_pattern: str

    @classmethod
    def of(cls, q: str) -> ContactSearch:
        digits = "".join(ch for ch in q if ch.isdigit())
        phone_like = bool(digits) and all(ch.isdigit() or ch in _PHONE_PUNCTUATION for ch in q)
        return cls(name_pattern=like_pattern(q), phone_pattern=like_pattern(digits if phone_like else q))

    @property
    def indexable(self) -> bool:
        """Whether both patterns hold a trigram (three characters between wildcards) the indexes can look up."""
        return all(len(pattern.strip("%")) >= 3 for pattern in (self.name_pattern, self.phone_pattern))

    def condition(self) -> sa.ColumnElement[bool]:
        """The match as a condition on the Contact row of the statement."""
        return sa.or_(col(Contact.name).ilike(self.name_pattern), col(Contact.phone).ilike(self.phone_pattern))


def _uuid_array(ids: Sequence[uuid.UUID]) -> sa.BindParameter[Any]:
    uuids: ARRAY[Any] = ARRAY(sa.Uuid())
    return sa.bindparam(None, list(ids), type_=uuids)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # contacts

    async def contact(self, *, tenant_id: str, contact_id: uuid.UUID) -> Contact | None:
        statement = select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id)
        return (await self._session.exec(statement)).first()

    async def contacts(self, *, tenant_id: str, contact_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Contact]:
        """Several contacts by id, in one query."""
        if not contact_ids:
            return {}
        rows = await (await driver(self._session)).fetch(_CONTACTS, tenant_id, list(contact_ids))
        return {row["id"]: Contact(**dict(row)) for row in rows}

    async def contacts_by_wa_id(self, *, tenant_id: str, wa_ids: Sequence[str]) -> dict[str, Contact]:
        """Several contacts by wa_id, in one query."""
        if not wa_ids:
            return {}
        rows = await (await driver(self._session)).fetch(_CONTACTS_BY_WA_ID, tenant_id, list(wa_ids))
        return {row["wa_id"]: Contact(**dict(row)) for row in rows}

    async def contact_by_wa_id(self, *, tenant_id: str, wa_id: str) -> Contact | None:
        row = await (await driver(self._session)).fetchrow(_CONTACT_BY_WA_ID, tenant_id, wa_id)
        return None if row is None else Contact(**dict(row))

    async def contact_by_user_id(self, *, tenant_id: str, user_id: str) -> Contact | None:
        row = await (await driver(self._session)).fetchrow(_CONTACT_BY_USER_ID, tenant_id, user_id)
        return None if row is None else Contact(**dict(row))

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
        row = await (await driver(self._session)).fetchrow(_CONVERSATION, tenant_id, conversation_id)
        return None if row is None else Conversation(**dict(row))

    async def upsert_active_conversation(
        self,
        *,
        tenant_id: str,
        contact_id: uuid.UUID,
        message_at: datetime,
        window_expires_at: datetime | None,
        phone_number_id: str | None,
    ) -> tuple[Conversation, bool]:
        """The contact's open or pending conversation (its window extended), or a new open one. With no
        `window_expires_at` (a coexistence echo) a new conversation gets no window and an existing one keeps its
        own (GREATEST ignores NULL).

        One statement, so concurrent callers agree: the partial unique index (one non-resolved conversation per
        contact) arbitrates, the loser updates the winner's row. Returns (conversation, created).
        """
        # xmax is 0 only on a row this statement inserted (PostgreSQL's usual "was it an insert?" test).
        row = await (await driver(self._session)).fetchrow(
            _UPSERT_ACTIVE, new_id(), tenant_id, contact_id, STATUS_OPEN, message_at, window_expires_at,
            phone_number_id)
        assert row is not None  # an upsert returns its row
        fields = dict(row)
        inserted = bool(fields.pop("inserted"))
        return Conversation(**fields), inserted

    async def latest_conversation(self, *, tenant_id: str, contact_id: uuid.UUID) -> Conversation | None:
        """The contact's open or pending conversation, else its latest one (resolved), else None."""
        statement = (
            select(Conversation)
            .where(Conversation.tenant_id == tenant_id, Conversation.contact_id == contact_id)
            .order_by(sa.case((col(Conversation.status) == STATUS_RESOLVED, 1), else_=0),
                      col(Conversation.created_at).desc(), col(Conversation.id).desc())
            .limit(1)
        )
        return (await self._session.exec(statement)).first()

    async def lock_active_conversations(self, *, tenant_id: str, contact_ids: Sequence[uuid.UUID]) -> None:
        """Locks the contacts' open and pending conversations until the transaction ends, in id order."""
        if contact_ids:
            await (await driver(self._session)).execute(_LOCK_ACTIVE, tenant_id, list(contact_ids))

    async def open_for_message(
        self,
        *,
        tenant_id: str,
        contact_id: uuid.UUID,
        message_at: datetime,
        window_expires_at: datetime,
        phone_number_id: str | None,
    ) -> tuple[Conversation, bool, bool]:
        """The conversation a guest's message goes to: the contact's latest one reopened when it is resolved (same
        id and history), else `upsert_active_conversation`'s; one statement. Returns (conversation, created,
        reopened)."""
        row = await (await driver(self._session)).fetchrow(
            _OPEN_FOR_MESSAGE, tenant_id, contact_id, message_at, window_expires_at, STATUS_OPEN, phone_number_id,
            STATUS_RESOLVED, new_id())
        if row is None:
            raise RuntimeError("the conversation upsert returned no row")
        fields = dict(row)
        inserted, reopened = bool(fields.pop("inserted")), bool(fields.pop("reopened"))
        return Conversation(**fields), inserted, reopened

    async def record_message(
        self,
        *,
        tenant_id: str,
        conversation_id: uuid.UUID,
        sent_at: datetime,
        inbound: bool,
        preview: str,
        window_expires_at: datetime | None,
    ) -> Conversation | None:
        """Moves last_message_at forward (the preview follows the latest message, whatever the arrival order); an
        inbound message also counts as unread, moves last_inbound_at and extends the window."""
        row = await (await driver(self._session)).fetchrow(
            _RECORD_MESSAGE, tenant_id, conversation_id, sent_at, preview, inbound, window_expires_at)
        return None if row is None else Conversation(**dict(row))

    async def mark_read(
        self, *, tenant_id: str, conversation_id: uuid.UUID, read_up_to: datetime | None
    ) -> Conversation | None:
        """Sets the unread count to 0 when the guest wrote nothing after `read_up_to` (Meta's time of the latest
        message read; None: whatever came in). None when nothing changed: no unread message, a newer guest message,
        or no such conversation."""
        conditions = [col(Conversation.tenant_id) == tenant_id, col(Conversation.id) == conversation_id,
                      col(Conversation.unread_count) > 0]
        if read_up_to is not None:
            conditions.append(sa.or_(col(Conversation.last_inbound_at).is_(None),
                                     col(Conversation.last_inbound_at) <= read_up_to))
        statement = (
            sa.update(Conversation)
            .where(*conditions)
            .values(unread_count=0, updated_at=sa.func.now())
            .returning(Conversation)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Conversation | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def conversation_for_update(self, *, tenant_id: str, conversation_id: uuid.UUID) -> Conversation | None:
        statement = (
            select(Conversation)
            .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.exec(statement)).first()

    async def update_conversation(
        self, *, tenant_id: str, conversation_id: uuid.UUID, changes: dict[str, Any]
    ) -> Conversation:
        statement = (
            sa.update(Conversation)
            .where(col(Conversation.tenant_id) == tenant_id, col(Conversation.id) == conversation_id)
            .values(**changes, updated_at=sa.func.now())
            .returning(Conversation)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Conversation = (await self._session.exec(statement)).scalars().one()
        return row

    async def matching_contact_ids(self, search: ContactSearch, *, max_rows: int) -> list[uuid.UUID]:
        """Ids of up to `max_rows` contacts of the transaction's tenant matching `search`, found through the
        trigram indexes (a SECURITY DEFINER function: under row-level security ILIKE could not use them)."""
        matches = sa.func.contact_ids_matching(search.name_pattern, search.phone_pattern, max_rows, type_=sa.Uuid())
        return list((await self._session.exec(select(matches))).all())

    async def _contact_matches(self, q: str, contact_id: Any) -> sa.ColumnElement[bool]:
        """The condition "the contact (`contact_id`) matches `q`": by the matching contacts' ids when there are few
        (SELECTIVE_SEARCH_MAX, found through the index), else the match itself, checked on the rows read in order
        (where matches are dense enough to fill a page soon). A query too short for a trigram counts as broad."""
        search = ContactSearch.of(q)
        if not search.indexable:
            return search.condition()
        ids = await self.matching_contact_ids(search, max_rows=SELECTIVE_SEARCH_MAX + 1)
        if len(ids) > SELECTIVE_SEARCH_MAX:
            return search.condition()
        return sa.false() if not ids else contact_id == sa.any_(_uuid_array(ids))

    async def list_conversations(
        self, *, tenant_id: str, filters: ConversationFilter, after: Position | None, limit: int
    ) -> list[tuple[Conversation, Contact]]:
        """One keyset page of the inbox, newest activity first: (last_message_at DESC, id DESC) strictly after
        `after`. Each filter reads an index led by tenant_id and ending in the sort key: a tag filter reads
        conversation_tags' copy of the sort key, a selective search the matching contacts' conversations."""
        sort_key: tuple[Any, Any] = (col(Conversation.last_message_at), col(Conversation.id))
        statement = (
            select(Conversation, Contact)
            .join(Contact, col(Contact.id) == col(Conversation.contact_id))
            .where(col(Conversation.tenant_id) == tenant_id, col(Contact.tenant_id) == tenant_id)
        )
        if filters.tag_id is not None:
            statement = statement.join(
                ConversationTag, col(ConversationTag.conversation_id) == col(Conversation.id)
            ).where(col(ConversationTag.tenant_id) == tenant_id, col(ConversationTag.tag_id) == filters.tag_id)
            sort_key = (col(ConversationTag.last_message_at), col(ConversationTag.conversation_id))
        if filters.status:
            statement = statement.where(col(Conversation.status) == filters.status)
        if filters.unassigned:
            statement = statement.where(col(Conversation.assigned_to).is_(None))
        elif filters.assigned_to:
            statement = statement.where(col(Conversation.assigned_to) == filters.assigned_to)
        if filters.q:
            statement = statement.where(await self._contact_matches(filters.q, col(Conversation.contact_id)))
        if filters.updated_since is not None:
            statement = statement.where(col(Conversation.updated_at) >= filters.updated_since)
        if after is not None:
            statement = statement.where(
                sa.tuple_(*sort_key)
                < sa.tuple_(sa.literal(after.time(), sa.DateTime(timezone=True)),
                            sa.literal(after.uuid(), sa.Uuid()))
            )
        statement = statement.order_by(sort_key[0].desc(), sort_key[1].desc()).limit(limit)
        return [(conversation, contact) for conversation, contact in (await self._session.exec(statement)).all()]

    # tags

    async def tags_of(self, *, tenant_id: str, conversation_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Tag]]:
        """The tags of each conversation (by name), in one query."""
        if not conversation_ids:
            return {}
        rows = await (await driver(self._session)).fetch(_TAGS_OF, tenant_id, list(conversation_ids))
        result: dict[uuid.UUID, list[Tag]] = {key: [] for key in conversation_ids}
        for row in rows:
            result[row["of_conversation"]].append(Tag(**{name: row[name] for name in _TAG_FIELDS}))
        return result

    async def tags(self, *, tenant_id: str) -> list[Tag]:
        statement = select(Tag).where(Tag.tenant_id == tenant_id).order_by(sa.func.lower(col(Tag.name)))
        return list((await self._session.exec(statement)).all())

    async def tag(self, *, tenant_id: str, tag_id: uuid.UUID) -> Tag | None:
        return (await self._session.exec(select(Tag).where(Tag.tenant_id == tenant_id, Tag.id == tag_id))).first()

    async def tag_by_name(self, *, tenant_id: str, name: str) -> Tag | None:
        statement = select(Tag).where(Tag.tenant_id == tenant_id, sa.func.lower(col(Tag.name)) == name.lower())
        return (await self._session.exec(statement)).first()

    async def insert_tag(self, *, tenant_id: str, name: str, color: str) -> Tag | None:
        """The new tag; None when the tenant already has one of that name (any case)."""
        statement = (
            pg_insert(Tag)
            .values(id=new_id(), tenant_id=tenant_id, name=name, color=color)
            .on_conflict_do_nothing()
            .returning(Tag)
        )
        row: Tag | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def update_tag(self, *, tenant_id: str, tag_id: uuid.UUID, changes: dict[str, Any]) -> Tag | None:
        statement = (
            sa.update(Tag)
            .where(col(Tag.tenant_id) == tenant_id, col(Tag.id) == tag_id)
            .values(**changes, updated_at=sa.func.now())
            .returning(Tag)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        row: Tag | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def delete_tag(self, *, tenant_id: str, tag_id: uuid.UUID) -> Tag | None:
        statement = sa.delete(Tag).where(col(Tag.tenant_id) == tenant_id, col(Tag.id) == tag_id).returning(Tag)
        row: Tag | None = (await self._session.exec(statement)).scalars().first()
        return row

    async def attach_tag(self, *, tenant_id: str, conversation_id: uuid.UUID, tag_id: uuid.UUID) -> bool:
        """True when the tag was newly attached (attaching twice changes nothing)."""
        statement = (
            pg_insert(ConversationTag)
            .values(tenant_id=tenant_id, conversation_id=conversation_id, tag_id=tag_id)
            .on_conflict_do_nothing()
            .returning(col(ConversationTag.tag_id))
        )
        return (await self._session.exec(statement)).first() is not None

    async def detach_tag(self, *, tenant_id: str, conversation_id: uuid.UUID, tag_id: uuid.UUID) -> bool:
        statement = (
            sa.delete(ConversationTag)
            .where(col(ConversationTag.tenant_id) == tenant_id, col(ConversationTag.conversation_id) == conversation_id,
                   col(ConversationTag.tag_id) == tag_id)
            .returning(col(ConversationTag.tag_id))
        )
        return (await self._session.exec(statement)).first() is not None

    # escalations

    async def add(self, row: Escalation) -> Escalation:
        self._session.add(row)
        await self._session.flush()
        await self._session.refresh(row)
        return row

    async def escalation_for_update(self, *, tenant_id: str, escalation_id: uuid.UUID) -> Escalation | None:
        statement = (
            select(Escalation)
            .where(Escalation.tenant_id == tenant_id, Escalation.id == escalation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self._session.exec(statement)).first()

    async def list_escalations(
        self, *, tenant_id: str, status: str | None, conversation_id: uuid.UUID | None, before: uuid.UUID | None,
        limit: int,
    ) -> list[Escalation]:
        statement = select(Escalation).where(Escalation.tenant_id == tenant_id)
        if status:
            statement = statement.where(Escalation.status == status)
        if conversation_id is not None:
            statement = statement.where(Escalation.conversation_id == conversation_id)
        if before is not None:
            statement = statement.where(col(Escalation.id) < before)
        statement = statement.order_by(col(Escalation.id).desc()).limit(limit)
        return list((await self._session.exec(statement)).all())

    # contacts (lists)

    async def list_contacts(
        self, *, tenant_id: str, q: str | None, before: uuid.UUID | None, limit: int
    ) -> list[Contact]:
        statement = select(Contact).where(Contact.tenant_id == tenant_id)
        if q:
            statement = statement.where(await self._contact_matches(q, col(Contact.id)))
        if before is not None:
            statement = statement.where(col(Contact.id) < before)
        statement = statement.order_by(col(Contact.id).desc()).limit(limit)
        return list((await self._session.exec(statement)).all())

    async def contact_by_phone(self, *, tenant_id: str, digits: str) -> Contact | None:
        statement = select(Contact).where(
            Contact.tenant_id == tenant_id,
            sa.or_(col(Contact.phone) == f"+{digits}", col(Contact.wa_id) == digits),
        )
        return (await self._session.exec(statement)).first()

