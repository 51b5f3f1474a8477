"""Audit log use cases: store each audit.recorded event once (the `tenant-audit` consumer), and list a tenant's
entries for its admins (and super admins) with filters and keyset pagination."""

from __future__ import annotations

import logging

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.audit import AUDIT_RECORDED, AuditEntry
from eva_events.envelope import EventEnvelope

from tenant_service import access
from tenant_service.audit_log.domain import (
    PLATFORM_TENANT_SLUG,
    AuditLogView,
    AuditPage,
    bounded_details,
    clean_audit_filter,
)
from tenant_service.audit_log.repository import AuditLogRepository
from tenant_service.models import AuditLog
from tenant_service.repository import TenantRepository

logger = logging.getLogger("tenant.audit")
AUDIT_CURSOR = "audit"


def audit_log_view(row: AuditLog) -> AuditLogView:
    return AuditLogView(
        id=row.id, tenant_id=row.tenant_id, actor_type=row.actor_type, actor_id=row.actor_id, action=row.action,
        target_type=row.target_type, target_id=row.target_id, outcome=row.outcome, ip=row.ip,
        user_agent=row.user_agent, request_id=row.request_id, details=dict(row.details), occurred_at=row.occurred_at,
    )


class AuditLogService:
    def __init__(self, *, sessions: SessionFactory, platform_slug: str = PLATFORM_TENANT_SLUG) -> None:
        self._sessions = sessions
        self._platform_slug = platform_slug
        self._platform_tenant_id: str | None = None

    async def store(self, *, event: EventEnvelope) -> bool:
        """Stores an audit.recorded event once (a redelivery is a no-op); False when nothing was stored. An entry
        with no tenant is the platform's (its super admins read it); with no platform tenant it is dropped."""
        if event.type != AUDIT_RECORDED:
            return False
        entry = AuditEntry.model_validate(event.data)  # a malformed entry fails here and ends in the DLQ
        tenant_id = event.tenant_id or await self._platform_tenant()
        if tenant_id is None:
            logger.warning("audit entry without a tenant dropped: there is no platform tenant",
                           extra={"event_id": event.id, "action": entry.action})
            return False
        row = AuditLog(
            id=event.id, tenant_id=tenant_id, actor_type=entry.actor_type, actor_id=entry.actor_id,
            action=entry.action, target_type=entry.target_type, target_id=entry.target_id, outcome=entry.outcome,
            ip=entry.ip, user_agent=entry.user_agent, request_id=entry.request_id,
            details=bounded_details(entry.details), occurred_at=event.occurred_at,
        )
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            return await AuditLogRepository(session).insert(row)

    async def _platform_tenant(self) -> str | None:
        if self._platform_tenant_id is None:
            async with transaction(self._sessions) as session:
                platform = await TenantRepository(session).by_slug(self._platform_slug)
            self._platform_tenant_id = platform.id if platform is not None else None
        return self._platform_tenant_id

    async def list_logs(
        self, *, principal: Principal, actor_id: str, action: str, target_type: str, target_id: str,
        from_time: str, to_time: str, limit: int, cursor: str,
    ) -> AuditPage:
        """The caller's tenant's entries, newest first (admins and super admins of that tenant)."""
        tenant_id = access.tenant_admin(principal, "read the audit log")
        filters = clean_audit_filter(actor_id=actor_id, action=action, target_type=target_type, target_id=target_id,
                                     from_time=from_time, to_time=to_time)
        size = page_size(limit)
        after = decode_cursor(cursor, kind=AUDIT_CURSOR, timed=True)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            rows = await AuditLogRepository(session).page(tenant_id=tenant_id, filters=filters, after=after,
                                                          limit=size + 1)
        items = [audit_log_view(row) for row in rows[:size]]
        more = len(rows) > size
        next_cursor = encode_cursor(Position(AUDIT_CURSOR, items[-1].id, items[-1].occurred_at)) if more else ""
        return AuditPage(items=items, next_cursor=next_cursor)
