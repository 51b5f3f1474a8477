"""/api/usage: the tenant's message usage and its plan's limits (TenantService). API keys with `usage:read` may
call it."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from eva.tenant.v1 import tenant_pb2
from eva_common.errors import InvalidArgument
from fastapi import APIRouter, Query

from gateway.deps import ClientsDep, UsageReaderDep
from gateway.problems import api_problems
from gateway.schemas.usage import UsageOut

router = APIRouter(prefix="/api/usage", tags=["usage"])

MAX_DAYS = 366


@router.get(
    "",
    summary="Messages per day, category and direction (inbound, outbound, delivered), with the plan's limits "
            "(default: the current month)",
    responses=api_problems(400, 409),
)
async def get_usage(
    principal: UsageReaderDep,
    clients: ClientsDep,
    from_date: Annotated[date | None, Query(alias="from", description="First day, YYYY-MM-DD (inclusive)")] = None,
    to_date: Annotated[date | None, Query(alias="to", description="Last day, YYYY-MM-DD (inclusive)")] = None,
) -> UsageOut:
    if from_date is not None and to_date is not None:
        if from_date > to_date:
            raise InvalidArgument("`from` is after `to`", code="VALIDATION_FAILED")
        if (to_date - from_date).days >= MAX_DAYS:
            raise InvalidArgument(f"at most {MAX_DAYS} days at a time", code="VALIDATION_FAILED")
    usage: tenant_pb2.GetUsageResponse = await clients.call(
        clients.tenant.GetUsage,
        tenant_pb2.GetUsageRequest(from_date=from_date.isoformat() if from_date else "",
                                   to_date=to_date.isoformat() if to_date else ""),
        token=principal.token,
    )
    return UsageOut.from_proto(usage)
