"""Escalations: an attendant asks for help on a conversation. open -> acknowledged -> resolved, or open -> resolved;
any other move is refused (FAILED_PRECONDITION ESCALATION_STATE)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound
from eva_common.ids import new_id, parse_id
from eva_common.outbox import enqueue
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.conversation import ESCALATION_RAISED, ESCALATION_UPDATED, EscalationChange
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.access import require_reader, require_writer
from conversation_service.events import escalation_event
from conversation_service.models import (
    ESCALATION_ACKNOWLEDGED,
    ESCALATION_OPEN,
    ESCALATION_RESOLVED,
    ESCALATION_STATUSES,
    PRIORITIES,
    PRIORITY_NORMAL,
    Escalation,
)
from conversation_service.repository import ConversationRepository

MAX_REASON_LENGTH = 500
MAX_NOTE_LENGTH = 2000
CURSOR_KIND = "esc"

# status -> the statuses it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    ESCALATION_OPEN: (ESCALATION_ACKNOWLEDGED, ESCALATION_RESOLVED),
    ESCALATION_ACKNOWLEDGED: (ESCALATION_RESOLVED,),
    ESCALATION_RESOLVED: (),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, ()):
        raise FailedPrecondition(f"an escalation that is {current} cannot become {target}",
                                 code="ESCALATION_STATE")


def _not_found() -> NotFound:
    return NotFound("escalation not found", code="ESCALATION_NOT_FOUND")


@dataclass(frozen=True, slots=True)
class EscalationPage:
    items: list[Escalation]
    next_cursor: str | None


class EscalationService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        events_topic: str,
        audit: AuditRecorder,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._events_topic = events_topic
        self._audit = audit
        self._clock = clock

    async def raise_escalation(self, *, actor: Actor, conversation_id: str, reason: str, priority: str) -> Escalation:
        require_writer(actor.principal)
        tenant = actor.principal.tenant_scope("")
        reason = reason.strip()
        if not 1 <= len(reason) <= MAX_REASON_LENGTH:
            raise InvalidArgument(f"a reason has 1 to {MAX_REASON_LENGTH} characters", code="VALIDATION_FAILED")
        priority = priority or PRIORITY_NORMAL
        if priority not in PRIORITIES:
            raise InvalidArgument(f"priority must be one of {', '.join(PRIORITIES)}", code="VALIDATION_FAILED")
        key = parse_id(conversation_id)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            conversation = None if key is None else await repository.conversation(tenant_id=tenant,
                                                                                  conversation_id=key)
            if conversation is None:
                raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
            escalation = await repository.add(Escalation(
                id=new_id(), tenant_id=tenant, conversation_id=conversation.id, reason=reason, priority=priority,
                status=ESCALATION_OPEN, raised_by=actor.principal.subject, created_at=self._clock(),
                updated_at=self._clock(),
            ))
            await self._record(session, actor, ESCALATION_RAISED, "escalation.raised", escalation)
            return escalation

    async def list_escalations(
        self, *, principal: Principal, status: str, conversation_id: str, limit: int, cursor: str
    ) -> EscalationPage:
        """Newest first, keyset by id (UUIDv7)."""
        require_reader(principal)
        tenant = principal.tenant_scope("")
        if status and status not in ESCALATION_STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(ESCALATION_STATUSES)}",
                                  code="VALIDATION_FAILED")
        size = page_size(limit)
        after = decode_cursor(cursor, kind=CURSOR_KIND, uuid_id=True)
        before = after.uuid() if after else None
        conversation_key: uuid.UUID | None = None
        if conversation_id:
            conversation_key = parse_id(conversation_id)
            if conversation_key is None:
                return EscalationPage(items=[], next_cursor=None)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            rows = await ConversationRepository(session).list_escalations(
                tenant_id=tenant, status=status or None, conversation_id=conversation_key, before=before,
                limit=size + 1)
        page = rows[:size]
        next_cursor = encode_cursor(Position(CURSOR_KIND, str(page[-1].id))) if len(rows) > size and page else None
        return EscalationPage(items=page, next_cursor=next_cursor)

    async def acknowledge(self, *, actor: Actor, escalation_id: str) -> Escalation:
        return await self._move(actor, escalation_id, ESCALATION_ACKNOWLEDGED, note=None)

    async def resolve(self, *, actor: Actor, escalation_id: str, note: str) -> Escalation:
        cleaned = note.strip()
        if len(cleaned) > MAX_NOTE_LENGTH:
            raise InvalidArgument(f"a note has at most {MAX_NOTE_LENGTH} characters", code="VALIDATION_FAILED")
        return await self._move(actor, escalation_id, ESCALATION_RESOLVED, note=cleaned or None)

    async def _move(self, actor: Actor, escalation_id: str, target: str, *, note: str | None) -> Escalation:
        require_writer(actor.principal)
        tenant = actor.principal.tenant_scope("")
        key = parse_id(escalation_id)
        if key is None:
            raise _not_found()
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            escalation = await repository.escalation_for_update(tenant_id=tenant, escalation_id=key)
            if escalation is None:
                raise _not_found()
            check_transition(escalation.status, target)
            now = self._clock()
            escalation.status = target
            escalation.updated_at = now
            if target == ESCALATION_ACKNOWLEDGED:
                escalation.acknowledged_by, escalation.acknowledged_at = actor.principal.subject, now
            else:
                escalation.resolved_by, escalation.resolved_at, escalation.note = actor.principal.subject, now, note
            escalation = await repository.add(escalation)
            await self._record(session, actor, ESCALATION_UPDATED, f"escalation.{target}", escalation)
            return escalation

    async def _record(
        self, session: AsyncSession, actor: Actor, event_type: EscalationChange, action: str,
        escalation: Escalation
    ) -> None:
        await enqueue(session, topic=self._events_topic, key=str(escalation.conversation_id),
                      event=escalation_event(event_type, escalation))
        await self._audit.record(session, tenant_id=escalation.tenant_id, actor=actor, action=action,
                                 target_type="escalation", target_id=str(escalation.id),
                                 details={"conversationId": str(escalation.conversation_id),
                                          "status": escalation.status, "priority": escalation.priority})
