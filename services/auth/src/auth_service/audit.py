"""Audit entries of auth's actions (logins, failed logins, logouts, refresh-token reuse, user changes), written
through auth's transactional outbox to `audit.events.v1` (type `audit.recorded`, keyed by tenant id).

Entries never carry a password, a token or a hash. An event needs a tenant: a failed login for an email that
exists nowhere has none, so it is attributed to the platform tenant (slug `platform`, whose super admins read
it), with only the email's domain; before the platform tenant exists such attempts are not audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from eva_common.audit import RequestMeta
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import DeadlineExceeded, Unavailable
from eva_common.outbox import enqueue
from eva_events.audit import AUDIT_RECORDED, ActorType, AuditEntry
from eva_events.envelope import make_event
from sqlmodel.ext.asyncio.session import AsyncSession

logger = logging.getLogger("auth.audit")

TARGET_USER = "user"
Outcome = Literal["success", "failure"]
# A tenant id, or how to find it when the entry is written (None: nobody to attribute it to; not recorded).
TenantRef = str | Callable[[], Awaitable[str | None]]

# Actions auth records.
LOGIN_SUCCEEDED = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGOUT = "auth.logout"
REFRESH_TOKEN_REUSED = "auth.refresh_token_reused"  # noqa: S105 - an action name
REGISTERED = "auth.registered"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an action name


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        kind: ActorType = principal.kind
        return cls(type=kind, id=principal.subject)

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls(type="user", id=user_id)


ANONYMOUS = Actor(type="anonymous")


def audit_entry(
    action: str,
    *,
    actor: Actor,
    client: RequestMeta,
    target_id: str | None = None,
    target_type: str | None = TARGET_USER,
    outcome: Outcome = "success",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry(
        actor_type=actor.type, actor_id=actor.id, action=action, target_type=target_type if target_id else None,
        target_id=target_id, outcome=outcome, ip=client.ip, user_agent=client.user_agent,
        request_id=client.request_id, details=details or {},
    )


class AuditLog:
    def __init__(self, *, sessions: SessionFactory, topic: str) -> None:
        self._sessions = sessions
        self._topic = topic
        self._pending: set[asyncio.Task[None]] = set()

    async def record(self, session: AsyncSession, *, tenant_id: str, entry: AuditEntry) -> None:
        """Adds the entry to the outbox inside the caller's transaction (which has set this tenant)."""
        event = make_event(AUDIT_RECORDED, tenant_id=tenant_id, data=entry)
        await enqueue(session, topic=self._topic, key=tenant_id, event=event)

    async def record_alone(self, *, tenant_id: str, entry: AuditEntry) -> None:
        """The entry in a transaction of its own (for outcomes that change nothing else, like a failed login)."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await self.record(session, tenant_id=tenant_id, entry=entry)

    def record_soon(self, *, tenant: TenantRef, entry: AuditEntry) -> None:
        """Records without making the caller wait, so a failed login answers in the same time whoever it is
        attributed to. `drain()` waits for these on shutdown."""
        task = asyncio.create_task(self._record_quietly(tenant=tenant, entry=entry), name="audit-entry")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record_quietly(self, *, tenant: TenantRef, entry: AuditEntry, attempts: int = 4) -> None:
        """Retries a passing failure (the tenant service or the database slow to answer) a few times."""
        for attempt in range(1, attempts + 1):
            try:
                tenant_id = tenant if isinstance(tenant, str) else await tenant()
                if tenant_id is None:
                    logger.info("audit entry with no tenant to attribute it to", extra={"action": entry.action})
                    return
                await self.record_alone(tenant_id=tenant_id, entry=entry)
                return
            except (Unavailable, DeadlineExceeded) as error:
                if attempt == attempts:
                    logger.exception("audit entry lost", extra={"action": entry.action})
                    return
                logger.warning("audit entry delayed; retrying",
                               extra={"action": entry.action, "attempt": attempt, "error": error.code})
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
            except Exception:
                logger.exception("audit entry lost", extra={"action": entry.action})
                return

    async def drain(self, timeout: float = 5.0) -> None:
        if self._pending:
            _, pending = await asyncio.wait(set(self._pending), timeout=timeout)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
