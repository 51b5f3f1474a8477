"""Caller authentication at the edge: a user's access token, verified locally against auth's JWKS.

Service tokens are refused here (they are for calls between services, never for the public API).
"""

from __future__ import annotations

import grpc
from eva_common.auth import Principal, TokenVerifier
from eva_common.errors import Unauthenticated
from eva_common.grpc.client import domain_error_from_rpc
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.state import gateway_state

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="accessToken",
    description="The access token from /auth/login, /auth/register or /auth/refresh.",
)


async def verify_user_token(verifier: TokenVerifier, token: str) -> Principal:
    """Verifies a user's access token; UNAUTHENTICATED / TOKEN_EXPIRED / TOKEN_INVALID on failure."""
    try:
        principal = await verifier.verify(token)
    except grpc.aio.AioRpcError as error:  # the JWKS could not be fetched from auth
        raise domain_error_from_rpc(error) from error
    if principal.kind != "user":
        raise Unauthenticated("service tokens are not accepted here", code="TOKEN_INVALID")
    return principal


async def require_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    """FastAPI dependency: the verified user behind `Authorization: Bearer <access token>`."""
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    return await verify_user_token(gateway_state(request).verifier, credentials.credentials.strip())
