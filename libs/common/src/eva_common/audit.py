"""Who did what: a mutation enqueues an `audit.recorded` entry (topic audit.events.v1, key tenant id) through the
outbox, in the same transaction as the change. The tenant service stores every service's entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from eva_events.audit import AUDIT_RECORDED, ActorType, AuditEntry
from eva_events.envelope import make_event
from eva_events.topics import AUDIT_EVENTS
from sqlmodel.ext.asyncio.session import AsyncSession

from eva_common.auth import Principal
from eva_common.outbox import enqueue

API_KEY_SUBJECT_PREFIX = "apikey:"
MAX_IP_LENGTH = 64
MAX_USER_AGENT_LENGTH = 512
MAX_REQUEST_ID_LENGTH = 128


def _bounded(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = value.strip()[:limit]
    return cleaned or None


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """The gateway's view of the caller (gRPC metadata x-client-ip / x-user-agent), used for audit only."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, *, ip: str | None, user_agent: str | None, request_id: str | None) -> RequestMeta:
        return cls(ip=_bounded(ip, MAX_IP_LENGTH), user_agent=_bounded(user_agent, MAX_USER_AGENT_LENGTH),
                   request_id=_bounded(request_id, MAX_REQUEST_ID_LENGTH))


NO_META = RequestMeta()


@dataclass(frozen=True, slots=True)
class Actor:
    """The verified caller of a mutation and how it reached us."""

    principal: Principal
    meta: RequestMeta = NO_META


def actor_of(principal: Principal) -> tuple[ActorType, str]:
    """(actor_type, actor_id): the user id, the API key id, or the service's subject."""
    if principal.is_service:
        return "service", principal.subject
    if principal.is_api_key:
        return "api_key", principal.subject.removeprefix(API_KEY_SUBJECT_PREFIX)
    return "user", principal.subject


class AuditRecorder:
    def __init__(self, *, topic: str = AUDIT_EVENTS) -> None:
        self._topic = topic

    async def record(
        self,
        session: AsyncSession,
        *,
        tenant_id: str,
        actor: Actor,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        outcome: Literal["success", "failure"] = "success",
    ) -> None:
        """Enqueues one entry in the caller's transaction (which must be scoped to `tenant_id`)."""
        actor_type, actor_id = actor_of(actor.principal)
        entry = AuditEntry(
            actor_type=actor_type, actor_id=actor_id, action=action, target_type=target_type, target_id=target_id,
            outcome=outcome, ip=actor.meta.ip, user_agent=actor.meta.user_agent, request_id=actor.meta.request_id,
            details=details or {},
        )
        await enqueue(session, topic=self._topic, key=tenant_id,
                      event=make_event(AUDIT_RECORDED, tenant_id=tenant_id, data=entry))
