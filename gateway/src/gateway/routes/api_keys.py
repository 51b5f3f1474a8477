"""/api/tenant/api-keys: the tenant's API keys, for its admins (TenantService). The key itself is returned once,
at creation, and is stored only as a digest."""

from __future__ import annotations

from typing import Annotated

from eva.tenant.v1 import tenant_pb2
from eva_common.identity import ADMIN_ROLES
from fastapi import APIRouter, Query, status

from gateway.deps import ClientsDep, PrincipalDep, StateDep
from gateway.problems import api_problems
from gateway.routes.params import ApiKeyId
from gateway.schemas.api_keys import ApiKeyCreateIn, ApiKeyList, CreatedApiKeyOut

router = APIRouter(prefix="/api/tenant/api-keys", tags=["api keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (admins); the key is in this response only",
    description=(
        "Creates an API key with the given scopes. **The `key` field of this response is the only time the key is "
        "shown**: it is stored as a digest and can never be read again, so store it now. Callers send it as "
        "`X-Api-Key: <key>` (or `Authorization: ApiKey <key>`) to the endpoints marked `x-accepts-api-key`."
    ),
    responses=api_problems(400, 409, 413, 422),
)
async def create_api_key(body: ApiKeyCreateIn, principal: PrincipalDep, clients: ClientsDep) -> CreatedApiKeyOut:
    principal.require_role(*ADMIN_ROLES)
    created: tenant_pb2.CreatedApiKey = await clients.call(clients.tenant.CreateApiKey, body.to_proto(),
                                                           token=principal.token)
    return CreatedApiKeyOut.from_proto(created)


@router.get("", summary="The tenant's API keys, never the keys themselves (admins)", responses=api_problems(400, 409))
async def list_api_keys(
    principal: PrincipalDep,
    clients: ClientsDep,
    include_revoked: Annotated[bool, Query(alias="includeRevoked", description="Revoked keys too")] = False,
) -> ApiKeyList:
    principal.require_role(*ADMIN_ROLES)
    listing: tenant_pb2.ListApiKeysResponse = await clients.call(
        clients.tenant.ListApiKeys, tenant_pb2.ListApiKeysRequest(include_revoked=include_revoked),
        token=principal.token,
    )
    return ApiKeyList.from_proto(listing)


@router.delete(
    "/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key (admins)",
    responses=api_problems(400, 404, 409),
)
async def revoke_api_key(api_key_id: ApiKeyId, principal: PrincipalDep, clients: ClientsDep, state: StateDep) -> None:
    principal.require_role(*ADMIN_ROLES)
    await clients.call(clients.tenant.RevokeApiKey, tenant_pb2.RevokeApiKeyRequest(api_key_id=api_key_id),
                       token=principal.token)
    state.api_keys.forget_key(api_key_id)  # this replica stops using its cached token at once
