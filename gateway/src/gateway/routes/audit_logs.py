"""/api/audit-logs: the tenant's append-only audit log, for its admins (TenantService)."""

from __future__ import annotations

from typing import Annotated

from eva.tenant.v1 import tenant_pb2
from eva_common.errors import InvalidArgument
from eva_common.identity import ADMIN_ROLES
from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, PageLimit
from gateway.schemas.audit import AuditLogPage
from gateway.schemas.base import DEFAULT_PAGE_SIZE, rfc3339

router = APIRouter(prefix="/api/audit-logs", tags=["audit logs"])



@router.get("", summary="Who did what, newest first (admins)", responses=api_problems(400, 409))
async def list_audit_logs(
    principal: PrincipalDep,
    clients: ClientsDep,
    actor_id: Annotated[str | None, Query(alias="actorId", min_length=1, max_length=128)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=128, examples=["user.created"])] = None,
    target_type: Annotated[str | None, Query(alias="targetType", min_length=1, max_length=64)] = None,
    target_id: Annotated[str | None, Query(alias="targetId", min_length=1, max_length=128)] = None,
    from_time: Annotated[AwareDatetime | None, Query(alias="from", description="RFC 3339, inclusive")] = None,
    to_time: Annotated[AwareDatetime | None, Query(alias="to", description="RFC 3339, exclusive")] = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> AuditLogPage:
    principal.require_role(*ADMIN_ROLES)
    if from_time is not None and to_time is not None and from_time >= to_time:
        raise InvalidArgument("`from` must be before `to`", code="VALIDATION_FAILED")
    page: tenant_pb2.ListAuditLogsResponse = await clients.call(
        clients.tenant.ListAuditLogs,
        tenant_pb2.ListAuditLogsRequest(
            actor_id=actor_id or "", action=action or "", target_type=target_type or "", target_id=target_id or "",
            from_time=rfc3339(from_time) if from_time else "", to_time=rfc3339(to_time) if to_time else "",
            limit=limit, cursor=cursor or "",
        ),
        token=principal.token,
    )
    return AuditLogPage.from_proto(page)
