"""/api/tenant/*: the caller's tenant settings (TenantService)."""

from __future__ import annotations

from eva.tenant.v1 import tenant_pb2
from fastapi import APIRouter

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import problem_responses
from gateway.schemas.tenant import WhatsAppCredentialsIn, WhatsAppCredentialsOut

router = APIRouter(prefix="/api/tenant", tags=["tenant"])

ADMIN_ROLES = ("admin", "super_admin")


@router.put(
    "/whatsapp",
    summary="Store the tenant's WhatsApp credentials (admin only; secrets are write-only)",
    responses=problem_responses(400, 401, 403, 409, 413, 503, 504),
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
    summary="The tenant's WhatsApp configuration (secrets only as {set, last4})",
    responses=problem_responses(401, 403, 409, 503, 504),
)
async def get_whatsapp_credentials(principal: PrincipalDep, clients: ClientsDep) -> WhatsAppCredentialsOut:
    view: tenant_pb2.WhatsAppCredentialsView = await clients.call(
        clients.tenant.GetWhatsAppCredentials, tenant_pb2.GetWhatsAppCredentialsRequest(), token=principal.token
    )
    return WhatsAppCredentialsOut.from_proto(view)
