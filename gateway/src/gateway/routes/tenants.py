"""/api/tenants: every tenant of the platform, for super admins (TenantService)."""

from __future__ import annotations

from typing import Annotated, Literal

from eva.tenant.v1 import tenant_pb2
from eva_common.auth import Principal
from eva_common.identity import ROLE_SUPER_ADMIN
from fastapi import APIRouter, Query, status

from gateway.clients import UpstreamClients
from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, PageLimit, SearchText, TenantId
from gateway.schemas.base import DEFAULT_PAGE_SIZE
from gateway.schemas.tenant import TenantCreateIn, TenantOut, TenantPage

router = APIRouter(prefix="/api/tenants", tags=["tenants"])

TenantStatus = Literal["active", "suspended"]


@router.get("", summary="Every tenant (super admins)", responses=api_problems(400))
async def list_tenants(
    principal: PrincipalDep,
    clients: ClientsDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    state: Annotated[TenantStatus | None, Query(alias="status", description="Only tenants in this state")] = None,
    q: SearchText = None,
) -> TenantPage:
    principal.require_role(ROLE_SUPER_ADMIN)
    page: tenant_pb2.ListTenantsResponse = await clients.call(
        clients.tenant.ListTenants,
        tenant_pb2.ListTenantsRequest(limit=limit, cursor=cursor or "", status=state or "", q=q or ""),
        token=principal.token,
    )
    return TenantPage.from_proto(page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant (super admins)",
    responses=api_problems(400, 409, 413),
)
async def create_tenant(body: TenantCreateIn, principal: PrincipalDep, clients: ClientsDep) -> TenantOut:
    principal.require_role(ROLE_SUPER_ADMIN)
    tenant: tenant_pb2.Tenant = await clients.call(clients.tenant.AdminCreateTenant, body.to_proto(),
                                                   token=principal.token)
    return TenantOut.from_proto(tenant)


async def _set_status(clients: UpstreamClients, principal: Principal, tenant_id: str, state: TenantStatus) -> TenantOut:
    principal.require_role(ROLE_SUPER_ADMIN)
    tenant: tenant_pb2.Tenant = await clients.call(
        clients.tenant.SetTenantStatus, tenant_pb2.SetTenantStatusRequest(tenant_id=tenant_id, status=state),
        token=principal.token,
    )
    return TenantOut.from_proto(tenant)


@router.post(
    "/{tenant_id}/suspend",
    summary="Suspend a tenant: no logins, no sending; its inbound webhooks are still stored (super admins)",
    responses=api_problems(400, 404, 422),
)
async def suspend_tenant(tenant_id: TenantId, principal: PrincipalDep, clients: ClientsDep) -> TenantOut:
    return await _set_status(clients, principal, tenant_id, "suspended")


@router.post(
    "/{tenant_id}/reactivate",
    summary="Reactivate a suspended tenant (super admins)",
    responses=api_problems(400, 404, 422),
)
async def reactivate_tenant(tenant_id: TenantId, principal: PrincipalDep, clients: ClientsDep) -> TenantOut:
    return await _set_status(clients, principal, tenant_id, "active")
