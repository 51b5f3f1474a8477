"""Caller authentication at the edge: a user's access token (verified locally against auth's JWKS and the
revocation times in Redis), or — only on the endpoints that accept them — a tenant's API key, exchanged at auth for
a short-lived `api_key` token. Authenticated /api/* calls are then counted against the per-user and per-tenant rate
limits.

Service tokens are refused here (they are for calls between services, never for the public API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from eva_common.auth import Principal, TokenVerifier
from eva_common.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from eva_common.grpc.client import domain_error_from_rpc
from fastapi import Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError
from starlette.datastructures import Headers

from gateway.client_context import ClientInfo, current_client
from gateway.ratelimits import Quota
from gateway.state import gateway_state

API_KEY_HEADER = "X-Api-Key"
API_KEY_AUTHORIZATION_SCHEME = "apikey"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="accessToken",
    description="The access token from /auth/login, /auth/register or /auth/refresh.",
)
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="apiKey",
    description=(
        "An API key of the tenant (`eva_<prefix>_<secret>`), also accepted as `Authorization: ApiKey <key>`. "
        "Only the endpoints marked `x-accepts-api-key: true` take one, and only with the scope they name in "
        "`x-api-key-scope`; every other endpoint answers 403 API_KEY_NOT_ALLOWED."
    ),
)


@dataclass(frozen=True, slots=True)
class Credentials:
    bearer: str | None
    api_key: str | None


def read_credentials(headers: Headers) -> Credentials:
    """`Authorization: Bearer <token>`, `Authorization: ApiKey <key>` and `X-Api-Key: <key>`."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    bearer = value if scheme.lower() == "bearer" and value else None
    keys = {key for key in (headers.get(API_KEY_HEADER, "").strip(),
                            value if scheme.lower() == API_KEY_AUTHORIZATION_SCHEME else "") if key}
    if len(keys) > 1:
        raise InvalidArgument("two different API keys were sent", code="AMBIGUOUS_CREDENTIALS")
    return Credentials(bearer=bearer, api_key=keys.pop() if keys else None)


async def verify_token(verifier: TokenVerifier, token: str) -> Principal:
    """Any valid token (signature, expiry, revocation); UNAUTHENTICATED / TOKEN_EXPIRED / TOKEN_INVALID /
    TOKEN_REVOKED on failure, 503 when the JWKS or the revocation times cannot be read."""
    try:
        return await verifier.verify(token)
    except grpc.aio.AioRpcError as error:  # the JWKS could not be fetched from auth
        raise domain_error_from_rpc(error) from error
    except RedisError as error:
        raise Unavailable("token revocations cannot be checked", code="UPSTREAM_UNAVAILABLE") from error


def _not_a_service(principal: Principal) -> Principal:
    if principal.is_service:
        raise Unauthenticated("service tokens are not accepted here", code="TOKEN_INVALID")
    return principal


async def verify_user_token(verifier: TokenVerifier, token: str) -> Principal:
    """A user's access token only: service tokens are TOKEN_INVALID, api_key tokens API_KEY_NOT_ALLOWED."""
    principal = _not_a_service(await verify_token(verifier, token))
    if principal.is_api_key:
        raise PermissionDenied("API keys are not accepted here", code="API_KEY_NOT_ALLOWED")
    return principal


def request_client(request: Request) -> ClientInfo:
    """The caller's address and user agent (set by the client-context middleware)."""
    return current_client() or gateway_state(request).proxies.client_of(request.scope)


def _apply(request: Request, response: Response, quota: Quota) -> None:
    """RateLimit-* headers on the answer: on success through `response`, on an error through request.state (the
    problem handler adds them)."""
    response.headers.update(quota.headers())
    request.state.rate_limit_quota = quota


async def _authenticated_user(request: Request) -> Principal:
    credentials = read_credentials(request.headers)
    if credentials.api_key is not None:
        raise PermissionDenied("API keys are not accepted on this endpoint", code="API_KEY_NOT_ALLOWED")
    if credentials.bearer is None:
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    return await verify_user_token(gateway_state(request).verifier, credentials.bearer)


async def require_user(
    request: Request, _: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    """FastAPI dependency: the verified user behind `Authorization: Bearer <access token>` (not counted; for
    /auth/me, which the per-IP limit of /auth/* covers)."""
    return await _authenticated_user(request)


async def require_api_user(
    request: Request, response: Response, _: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    """FastAPI dependency of /api/* endpoints for users only: verified, then counted per user and per tenant."""
    principal = await _authenticated_user(request)
    _apply(request, response, await gateway_state(request).limits.caller(principal))
    return principal


def api_key_access(scope: str) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency of an /api/* endpoint that API keys may call too, if they carry `scope`: a verified user,
    or the verified `api_key` principal of the key; counted per user (or key) and per tenant.

    The OpenAPI document shows it as two alternative security requirements, the bearer token or the `apiKey`
    scheme with `scope` (app.document_access turns that into `x-accepts-api-key` and `x-api-key-scope`).
    """

    async def authenticate(
        request: Request,
        response: Response,
        _bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        _key: str | None = Security(api_key_scheme, scopes=[scope]),
    ) -> Principal:
        state = gateway_state(request)
        credentials = read_credentials(request.headers)
        if credentials.api_key is not None:
            if credentials.bearer is not None:
                raise InvalidArgument("send a bearer token or an API key, not both", code="AMBIGUOUS_CREDENTIALS")
            principal = await state.api_keys.principal(credentials.api_key, client_ip=request_client(request).ip)
        elif credentials.bearer is not None:
            principal = _not_a_service(await verify_token(state.verifier, credentials.bearer))
        else:
            raise Unauthenticated("missing bearer token or API key", code="UNAUTHENTICATED")
        _apply(request, response, await state.limits.caller(principal))
        principal.require_scope(scope)
        return principal

    return authenticate


async def limit_auth_calls(request: Request, response: Response) -> None:
    """FastAPI dependency of /auth/*: counted per client IP."""
    _apply(request, response, await gateway_state(request).limits.auth_call(request_client(request).ip))
