"""Message templates as Meta last reported them (`templates`, one row per tenant, name and language) and when each
tenant's were last synced (`template_syncs`): the queries, the view and `template.updated` event, ListTemplates
(keyset pages), and Meta's template webhooks applied to the stored rows (reference §12)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.identity import SCOPE_MESSAGES_READ
from eva_common.outbox import enqueue
from eva_common.paging import Position, decode_cursor, encode_cursor, invalid_cursor, page_size
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import TEMPLATE_UPDATED, TemplateView
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.models import Template, TemplateSync
from messaging_service.webhook import TemplateChange, TemplateUpdate

LIST_KIND = "templates"
DELETED = "DELETED"  # the status announced for a template Meta no longer lists (its row is deleted)

# What a sync compares to tell an updated template from an unchanged one.
_SYNCED_FIELDS = ("waba_id", "meta_id", "status", "category", "quality", "parameter_format", "components",
                  "rejected_reason")


def template_view(template: Template, *, status: str | None = None) -> TemplateView:
    return TemplateView(
        id=str(template.id), name=template.name, language=template.language, status=status or template.status,
        category=template.category, quality=template.quality, parameter_format=template.parameter_format,
        components=list(template.components or []), rejected_reason=template.rejected_reason,
        updated_at=template.updated_at,
    )


def template_event(template: Template, *, status: str | None = None) -> EventEnvelope:
    """`template.updated` (TemplateView), keyed by the tenant id on messaging.events.v1."""
    return make_event(TEMPLATE_UPDATED, tenant_id=template.tenant_id, data=template_view(template, status=status))


async def announce(session: AsyncSession, template: Template, *, events_topic: str, status: str | None = None) -> None:
    await enqueue(session, topic=events_topic, key=template.tenant_id, event=template_event(template, status=status))


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_tenant(self, *, tenant_id: str) -> None:
        """Serializes the writers of one tenant's templates (syncs and webhooks) until the transaction ends."""
        connection = await self._session.connection()
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                                 {"key": f"templates\x1f{tenant_id}"})

    async def all(self, *, tenant_id: str) -> list[Template]:
        statement = select(Template).where(Template.tenant_id == tenant_id)
        return list((await self._session.exec(statement)).all())

    async def by_meta_id(self, *, tenant_id: str, meta_id: str) -> Template | None:
        statement = select(Template).where(Template.tenant_id == tenant_id, Template.meta_id == meta_id)
        return (await self._session.exec(statement.with_for_update())).first()

    async def by_name(self, *, tenant_id: str, name: str, language: str) -> Template | None:
        statement = select(Template).where(Template.tenant_id == tenant_id, Template.name == name,
                                           Template.language == language)
        return (await self._session.exec(statement)).first()

    async def add(self, template: Template) -> Template:
        self._session.add(template)
        await self._session.flush()
        return template

    async def delete(self, template: Template) -> None:
        await self._session.delete(template)
        await self._session.flush()

    async def page(
        self, *, tenant_id: str, after: tuple[str, str] | None, limit: int, status: str | None = None,
        category: str | None = None, language: str | None = None, quality: str | None = None,
        name: str | None = None,
    ) -> list[Template]:
        """Ordered by (name, language), the table's unique key within a tenant."""
        statement = select(Template).where(Template.tenant_id == tenant_id)
        if status:
            statement = statement.where(sa.func.upper(col(Template.status)) == status.upper())
        if category:
            statement = statement.where(sa.func.upper(col(Template.category)) == category.upper())
        if quality:
            statement = statement.where(sa.func.upper(col(Template.quality)) == quality.upper())
        if language:
            statement = statement.where(Template.language == language)
        if name:
            statement = statement.where(col(Template.name).ilike(f"%{_escape_like(name)}%", escape="\\"))
        if after is not None:
            statement = statement.where(sa.tuple_(col(Template.name), col(Template.language)) > sa.tuple_(*after))
        statement = statement.order_by(col(Template.name), col(Template.language)).limit(limit)
        return list((await self._session.exec(statement)).all())

    async def sync_state(self, *, tenant_id: str) -> TemplateSync | None:
        statement = select(TemplateSync).where(TemplateSync.tenant_id == tenant_id)
        return (await self._session.exec(statement.execution_options(populate_existing=True))).first()

    async def register(self, *, tenant_id: str, waba_id: str | None, due_at: datetime | None = None) -> None:
        """Enters the tenant into the periodic sync (or moves its next sync to `due_at`, now by default), keeping
        the WABA id it was last seen with."""
        due = due_at or datetime.now(UTC)
        values: dict[str, Any] = {"tenant_id": tenant_id, "next_sync_at": due}
        update: dict[str, Any] = {"next_sync_at": sa.func.least(col(TemplateSync.next_sync_at), due),
                                  "updated_at": sa.func.now()}
        if waba_id:
            values["waba_id"] = waba_id
            update["waba_id"] = waba_id
        statement = pg_insert(TemplateSync).values(**values).on_conflict_do_update(
            index_elements=["tenant_id"], set_=update)
        await self._session.exec(statement)

    async def finish_sync(
        self, *, tenant_id: str, waba_id: str | None, synced_at: datetime | None, next_sync_at: datetime,
        error: str | None,
    ) -> None:
        """Records a sync's outcome: `synced_at` when it succeeded (kept otherwise), the error when it failed."""
        values: dict[str, Any] = {"tenant_id": tenant_id, "waba_id": waba_id, "next_sync_at": next_sync_at,
                                  "last_error": error}
        update: dict[str, Any] = {"next_sync_at": next_sync_at, "last_error": error, "updated_at": sa.func.now()}
        if waba_id:
            update["waba_id"] = waba_id
        if synced_at is not None:
            values["synced_at"] = synced_at
            update["synced_at"] = synced_at
        statement = pg_insert(TemplateSync).values(**values).on_conflict_do_update(
            index_elements=["tenant_id"], set_=update)
        await self._session.exec(statement)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def due_template_syncs(session: AsyncSession, *, batch: int) -> list[str]:
    """The tenants whose periodic sync is due, oldest due first (a SECURITY DEFINER function: across tenants)."""
    connection = await session.connection()
    rows = await connection.execute(sa.text("SELECT tenant_id FROM due_template_syncs(:batch)"), {"batch": batch})
    return [str(row[0]) for row in rows]


def changed_fields(template: Template, fields: dict[str, Any]) -> bool:
    return any(getattr(template, name) != fields.get(name) for name in _SYNCED_FIELDS)


# ------------------------------------------------------------------ ListTemplates


@dataclass(frozen=True, slots=True)
class TemplatePage:
    items: list[Template]
    next_cursor: str | None
    synced_at: datetime | None


@dataclass(frozen=True, slots=True)
class TemplateFilter:
    status: str = ""
    category: str = ""
    language: str = ""
    quality: str = ""
    name: str = ""


def _cursor_key(position: Position) -> tuple[str, str]:
    try:
        name, language = json.loads(position.id)
    except (ValueError, TypeError):
        raise invalid_cursor() from None
    if not isinstance(name, str) or not isinstance(language, str):
        raise invalid_cursor()
    return name, language


class TemplateReader:
    """ListTemplates: users of the tenant, API keys with messages:read, services naming the tenant."""

    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def list_templates(
        self, *, principal: Principal, filters: TemplateFilter, limit: int = 0, cursor: str = "", tenant_id: str = ""
    ) -> TemplatePage:
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(SCOPE_MESSAGES_READ)
        size = page_size(limit)
        after = decode_cursor(cursor, kind=LIST_KIND)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = TemplateRepository(session)
            rows = await repository.page(
                tenant_id=tenant, after=_cursor_key(after) if after else None, limit=size + 1,
                status=filters.status or None, category=filters.category or None,
                language=filters.language or None, quality=filters.quality or None, name=filters.name or None)
            state = await repository.sync_state(tenant_id=tenant)
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor(Position(LIST_KIND, json.dumps([last.name, last.language])))
        return TemplatePage(items=rows[:size], next_cursor=next_cursor,
                            synced_at=state.synced_at if state else None)


# ------------------------------------------------------------------ Meta's template webhooks


@dataclass(frozen=True, slots=True)
class AppliedUpdate:
    """What a template webhook did: the template it changed (None when unchanged or unknown) and whether the
    template was unknown here (its tenant then needs a sync)."""

    template: Template | None
    unknown: bool = False


async def apply_template_update(
    session: AsyncSession, *, tenant_id: str, update: TemplateUpdate, events_topic: str
) -> AppliedUpdate:
    """Applies Meta's status (with the rejected reason), category or quality to the stored template, found by Meta's
    id, else by name and language, and announces `template.updated`. An unknown template is never invented."""
    repository = TemplateRepository(session)
    await repository.lock_tenant(tenant_id=tenant_id)
    template = await repository.by_meta_id(tenant_id=tenant_id, meta_id=update.meta_id) if update.meta_id else None
    if template is None and update.name and update.language:
        template = await repository.by_name(tenant_id=tenant_id, name=update.name, language=update.language)
    if template is None:
        return AppliedUpdate(template=None, unknown=True)
    before = (template.status, template.rejected_reason, template.category, template.quality)
    if update.change is TemplateChange.STATUS:
        template.status = update.value
        template.rejected_reason = update.reason
    elif update.change is TemplateChange.CATEGORY:
        template.category = update.value
    else:
        template.quality = update.value
    if (template.status, template.rejected_reason, template.category, template.quality) == before:
        return AppliedUpdate(template=None)
    if template.meta_id is None and update.meta_id:
        template.meta_id = update.meta_id
    template.updated_at = datetime.now(UTC)
    session.add(template)
    await session.flush()
    await announce(session, template, events_topic=events_topic)
    return AppliedUpdate(template=template)


def next_sync(now: datetime, interval_seconds: float) -> datetime:
    return now + timedelta(seconds=interval_seconds)


def ids(templates: Sequence[Template]) -> list[uuid.UUID]:
    return [template.id for template in templates]
