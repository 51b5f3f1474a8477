"""/api/tenant: the caller's own tenant and its WhatsApp credentials (TenantService)."""

from __future__ import annotations

from eva.tenant.v1 import tenant_pb2
from eva_common.auth import Principal
from eva_common.errors import NotFound
from eva_common.identity import ADMIN_ROLES
from fastapi import APIRouter

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import api_problems
from gateway.schemas.tenant import OwnTenantOut, TenantUpdateIn, WhatsAppCredentialsIn, WhatsAppCredentialsOut

router = APIRouter(prefix="/api/tenant", tags=["tenant"])


def _own(principal: Principal, tenant: tenant_pb2.Tenant) -> OwnTenantOut:
    """Defence in depth: only the caller's own tenant is ever shown here."""
    if tenant.id != principal.tenant_id:
        raise NotFound("tenant not found", code="NOT_FOUND")
    return OwnTenantOut.from_proto(tenant)


@router.get("", summary="The caller's tenant, with its read-receipt policy", responses=api_problems(404, 409))
async def get_tenant(principal: PrincipalDep, clients: ClientsDep) -> OwnTenantOut:
    tenant: tenant_pb2.Tenant = await clients.call(clients.tenant.GetTenant, tenant_pb2.GetTenantRequest(),
                                                   token=principal.token)
    return _own(principal, tenant)


@router.patch(
    "",
    summary="Change the caller's tenant: name, time zone, locale, read receipts (`on_read` | `never`) (admins)",
    responses=api_problems(400, 404, 409, 413),
)
async def update_tenant(body: TenantUpdateIn, principal: PrincipalDep, clients: ClientsDep) -> OwnTenantOut:
    principal.require_role(*ADMIN_ROLES)
    tenant: tenant_pb2.Tenant = await clients.call(clients.tenant.UpdateTenant, body.to_proto(),
                                                   token=principal.token)
    return _own(principal, tenant)


@router.put(
    "/whatsapp",
    summary="Store the tenant's WhatsApp credentials, coexistence and throughput (admin only; secrets are "
            "write-only; a new access token makes an unhealthy number healthy again)",
    responses=api_problems(400, 409, 413),
)
async def put_whatsapp_credentials(
    body: WhatsAppCredentialsIn, principal: PrincipalDep, clients: ClientsDep
) -> WhatsAppCredentialsOut:
    principal.require_role(*ADMIN_ROLES)
    view: tenant_pb2.WhatsAppCredentialsView = await clients.call(
        clients.tenant.PutWhatsAppCredentials, body.to_proto(), token=principal.token
    )
    return WhatsAppCredentialsOut.from_proto(view)


@router.get(
    "/whatsapp",
    summary="The tenant's WhatsApp configuration and health (admin only; secrets only as {set, last4})",
    responses=api_problems(409),
)
async def get_whatsapp_credentials(principal: PrincipalDep, clients: ClientsDep) -> WhatsAppCredentialsOut:
    principal.require_role(*ADMIN_ROLES)
    view: tenant_pb2.WhatsAppCredentialsView = await clients.call(
        clients.tenant.GetWhatsAppCredentials, tenant_pb2.GetWhatsAppCredentialsRequest(), token=principal.token
    )
    return WhatsAppCredentialsOut.from_proto(view)
