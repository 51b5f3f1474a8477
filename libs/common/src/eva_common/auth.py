"""Trust between services: verifying access tokens against auth's JWKS, and obtaining service tokens.

The gateway forwards the caller's access token in gRPC metadata; every service verifies it here. Work done for
no user (consumers, workers) carries a short-lived service token from auth. A tenant id is trusted only from a
verified token (or, for a service principal, from the request it makes on a tenant's behalf).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jwt
from redis.asyncio import Redis

from eva_common.errors import PermissionDenied, Unauthenticated

ALGORITHM = "EdDSA"  # pinned: `none` and HMAC algorithms are refused before any key is looked at

JwksSource = Callable[[], Awaitable[dict[str, Any]]]
TokenKind = Literal["user", "service", "api_key"]
REVOCATION_KEY = "auth:revoked-before:{subject}"
VERIFIED_TOKENS_KEPT = 10_000  # per process; the oldest is forgotten first


class RevocationCheck(Protocol):
    async def revoked_before_ms(self, subject: str) -> int | None: ...

    async def revoked_before_many(self, subjects: Collection[str]) -> dict[str, int]: ...


class RedisRevocations:
    """Per-subject revocation times in Redis: tokens issued before them are refused everywhere.

    auth writes them (deactivation, deletion, password change); every verifier reads them with the signature.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def revoke(self, subject: str, *, at_ms: int | None = None) -> int:
        moment = at_ms if at_ms is not None else int(time.time() * 1000)
        await self._redis.set(REVOCATION_KEY.format(subject=subject), str(moment))
        return moment

    async def revoked_before_ms(self, subject: str) -> int | None:
        value = await self._redis.get(REVOCATION_KEY.format(subject=subject))
        return int(value) if value else None

    async def revoked_before_many(self, subjects: Collection[str], *, batch: int = 500) -> dict[str, int]:
        """The revocation time of each of `subjects` that has one (one MGET per `batch` subjects)."""
        ordered = list(dict.fromkeys(subjects))
        found: dict[str, int] = {}
        for start in range(0, len(ordered), batch):
            chunk = ordered[start:start + batch]
            values = await self._redis.mget([REVOCATION_KEY.format(subject=subject) for subject in chunk])
            found.update({subject: int(value) for subject, value in zip(chunk, values, strict=True) if value})
        return found


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    kind: TokenKind
    role: str
    tenant_id: str | None
    token: str
    token_id: str
    issued_at: int
    expires_at: int
    scopes: tuple[str, ...] = ()
    issued_at_ms: int = 0  # `iat_ms` (what revocation times are compared with), else iat * 1000

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def require_tenant(self) -> str:
        if self.tenant_id is None:
            raise PermissionDenied("this call needs a tenant", code="TENANT_REQUIRED")
        return self.tenant_id

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise PermissionDenied("your role cannot do this", code="FORBIDDEN_ROLE")

    @property
    def is_api_key(self) -> bool:
        return self.kind == "api_key"

    def require_scope(self, scope: str) -> None:
        """API keys need the scope; users and services are governed by their role instead."""
        if self.is_api_key and scope not in self.scopes:
            raise PermissionDenied(f"this API key lacks the {scope!r} scope", code="SCOPE_MISSING")

    def require_service(self) -> None:
        if not self.is_service:
            raise PermissionDenied("only services may call this", code="SERVICE_ONLY")

    def tenant_scope(self, requested_tenant_id: str) -> str:
        """The tenant a call acts on: a user's own tenant always; a service's requested one."""
        if self.is_service:
            if not requested_tenant_id:
                raise PermissionDenied("a service call must name its tenant", code="TENANT_REQUIRED")
            return requested_tenant_id
        return self.require_tenant()


principal_var: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal:
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("no verified caller", code="UNAUTHENTICATED")
    return principal


class TokenVerifier:
    """Verifies EdDSA access tokens against a JWKS that is fetched lazily and refreshed on an unknown `kid`."""

    def __init__(
        self,
        *,
        jwks_source: JwksSource,
        issuer: str,
        audience: str,
        leeway_seconds: int = 5,
        refresh_interval_seconds: float = 300.0,
        min_refetch_seconds: float = 10.0,
        revocations: RevocationCheck | None = None,
    ) -> None:
        self._revocations = revocations
        self._jwks_source = jwks_source
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._refresh_interval = refresh_interval_seconds
        self._min_refetch = min_refetch_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        # token -> (its key id, the principal its verified claims make): a service or a browser presents the same
        # token for minutes, and an EdDSA verification plus the claim checks cost more than the call they guard
        self._verified: dict[str, tuple[str, Principal]] = {}

    async def revocation_times(self, subjects: Collection[str]) -> dict[str, int]:
        """Revocation times (ms) of those of `subjects` that have one: tokens of theirs issued before are refused.
        For re-checking tokens verified earlier (sockets) without verifying each again."""
        if self._revocations is None or not subjects:
            return {}
        return await self._revocations.revoked_before_many(subjects)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if self._keys and (age < self._min_refetch or (not force and age < self._refresh_interval)):
                return
            document = await self._jwks_source()
            keys: dict[str, jwt.PyJWK] = {}
            for entry in document.get("keys", []):
                if entry.get("kid") and entry.get("kty") == "OKP":
                    keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm=ALGORITHM)
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed by an unknown key", code="TOKEN_INVALID")
        return key

    async def verify(self, token: str) -> Principal:
        """The token's principal: its signature and claims verified once, then remembered until it expires; the
        revocation check (a user's sessions ended, an API key revoked) runs on every call."""
        cached = self._verified.get(token)
        if cached is not None:
            await self._refresh(force=False)  # the published keys, at most `refresh_interval` old
        if cached is not None and cached[0] in self._keys:
            principal = cached[1]
            if time.time() > principal.expires_at + self._leeway:
                del self._verified[token]
                raise Unauthenticated("token expired", code="TOKEN_EXPIRED")
        else:
            kid, principal = await self._verify_signed(token)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (kid, principal)
        if self._revocations is not None and principal.kind != "service":
            revoked_before = await self._revocations.revoked_before_ms(principal.subject)
            if revoked_before is not None and principal.issued_at_ms < revoked_before:
                raise Unauthenticated("token revoked", code="TOKEN_REVOKED")
        return principal

    async def _verify_signed(self, token: str) -> tuple[str, Principal]:
        """The key id and the principal of a token whose signature and claims are valid now."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token", code="TOKEN_INVALID") from exc
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise Unauthenticated("token algorithm or key id refused", code="TOKEN_INVALID")
        key = await self._key_for(header["kid"])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "role"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", code="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token refused", code="TOKEN_INVALID") from exc
        kind = claims["typ"]
        if kind not in ("user", "service", "api_key"):
            raise Unauthenticated("token type refused", code="TOKEN_INVALID")
        tenant_id = claims.get("tid")
        if kind in ("user", "api_key") and not tenant_id:
            raise Unauthenticated("token without tenant", code="TOKEN_INVALID")
        scopes = claims.get("scopes") or ()
        return header["kid"], Principal(
            subject=str(claims["sub"]),
            kind=kind,
            role=str(claims["role"]),
            tenant_id=str(tenant_id) if tenant_id else None,
            token=token,
            token_id=str(claims["jti"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            scopes=tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else (),
            issued_at_ms=int(claims.get("iat_ms") or int(claims["iat"]) * 1000),
        )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token", code="UNAUTHENTICATED")
    return token.strip()


def grpc_jwks_source(channel_factory: Callable[[], Any], *, timeout: float = 3.0) -> JwksSource:
    """A JWKS source that asks auth over gRPC (GetJwks needs no token)."""
    from eva.auth.v1 import auth_pb2, auth_pb2_grpc

    async def fetch() -> dict[str, Any]:
        stub = auth_pb2_grpc.AuthServiceStub(channel_factory())
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=timeout, wait_for_ready=True)
        document: dict[str, Any] = json.loads(response.jwks_json)
        return document

    return fetch


class ServiceTokenProvider:
    """Obtains and caches this service's short-lived token from auth; renews it a minute before expiry."""

    def __init__(
        self, *, channel_factory: Callable[[], Any], service_name: str, client_secret: str, timeout: float = 5.0
    ) -> None:
        self._channel_factory = channel_factory
        self._service_name = service_name
        self._client_secret = client_secret
        self._timeout = timeout
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._renew_at:
                return self._token
            from eva.auth.v1 import auth_pb2, auth_pb2_grpc

            stub = auth_pb2_grpc.AuthServiceStub(self._channel_factory())
            response = await stub.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    service_name=self._service_name, client_secret=self._client_secret
                ),
                timeout=self._timeout,
                wait_for_ready=True,
            )
            self._token = response.access_token
            self._renew_at = time.monotonic() + max(5.0, response.expires_in - 60)
            return self._token
