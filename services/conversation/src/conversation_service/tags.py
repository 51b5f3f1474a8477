"""Tags of a tenant: list (any reader), create, rename, recolor and delete (admins). Names are unique per tenant
case-insensitively; colors are #rrggbb. Attaching and detaching live with the conversation (service.py)."""

from __future__ import annotations

import re
from typing import Any

from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import AlreadyExists, InvalidArgument, NotFound
from eva_common.ids import parse_id
from eva_common.outbox import enqueue
from eva_events.conversation import TAG_CREATED, TAG_DELETED, TAG_UPDATED, TagChange
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.access import ADMIN_ROLES, require_reader, require_writer
from conversation_service.events import tag_event
from conversation_service.models import Tag
from conversation_service.repository import ConversationRepository

MAX_NAME_LENGTH = 50
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def valid_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH:
        raise InvalidArgument(f"a tag name has 1 to {MAX_NAME_LENGTH} characters", code="VALIDATION_FAILED")
    return cleaned


def valid_color(color: str) -> str:
    if not _COLOR.match(color):
        raise InvalidArgument("a tag color is #rrggbb", code="VALIDATION_FAILED")
    return color.lower()


def _name_taken() -> AlreadyExists:
    return AlreadyExists("a tag with this name already exists", code="TAG_EXISTS")


class TagService:
    def __init__(self, *, sessions: SessionFactory, events_topic: str, audit: AuditRecorder) -> None:
        self._sessions = sessions
        self._events_topic = events_topic
        self._audit = audit

    async def list_tags(self, *, principal: Principal) -> list[Tag]:
        require_reader(principal)
        tenant = principal.tenant_scope("")
        async with transaction(self._sessions, tenant_id=tenant) as session:
            return await ConversationRepository(session).tags(tenant_id=tenant)

    async def create_tag(self, *, actor: Actor, name: str, color: str) -> Tag:
        require_writer(actor.principal, *ADMIN_ROLES)
        tenant = actor.principal.tenant_scope("")
        name, color = valid_name(name), valid_color(color)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            tag = await ConversationRepository(session).insert_tag(tenant_id=tenant, name=name, color=color)
            if tag is None:
                raise _name_taken()
            await self._record(session, actor, TAG_CREATED, tag, {"name": name, "color": color})
            return tag

    async def update_tag(self, *, actor: Actor, tag_id: str, name: str | None, color: str | None) -> Tag:
        require_writer(actor.principal, *ADMIN_ROLES)
        tenant = actor.principal.tenant_scope("")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = valid_name(name)
        if color is not None:
            changes["color"] = valid_color(color)
        key = parse_id(tag_id)
        try:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = ConversationRepository(session)
                tag = None if key is None else await repository.tag(tenant_id=tenant, tag_id=key)
                if tag is None:
                    raise NotFound("tag not found", code="TAG_NOT_FOUND")
                if not changes:
                    return tag
                updated = await repository.update_tag(tenant_id=tenant, tag_id=tag.id, changes=changes)
                if updated is None:
                    raise NotFound("tag not found", code="TAG_NOT_FOUND")
                await self._record(session, actor, TAG_UPDATED, updated, changes)
                return updated
        except IntegrityError as error:
            raise _name_taken() from error

    async def delete_tag(self, *, actor: Actor, tag_id: str) -> None:
        """Deletes the tag and detaches it from every conversation."""
        require_writer(actor.principal, *ADMIN_ROLES)
        tenant = actor.principal.tenant_scope("")
        key = parse_id(tag_id)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            tag = None if key is None else await ConversationRepository(session).delete_tag(tenant_id=tenant,
                                                                                           tag_id=key)
            if tag is None:
                raise NotFound("tag not found", code="TAG_NOT_FOUND")
            await self._record(session, actor, TAG_DELETED, tag, {"name": tag.name})

    async def _record(
        self, session: AsyncSession, actor: Actor, action: TagChange, tag: Tag, details: dict[str, Any]
    ) -> None:
        await enqueue(session, topic=self._events_topic, key=str(tag.id), event=tag_event(action, tag))
        await self._audit.record(session, tenant_id=tag.tenant_id, actor=actor, action=action, target_type="tag",
                                 target_id=str(tag.id), details=details)
