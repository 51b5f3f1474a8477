"""Auth use cases: register, login, refresh-token rotation, logout, the caller's profile, service tokens."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import DomainError, PermissionDenied, Unauthenticated
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.clients import TenantDirectory
from auth_service.domain import (
    TENANT_ACTIVE,
    AuthSession,
    Me,
    RefreshDecision,
    TenantInfo,
    UserView,
    clean_name,
    decide_refresh,
)
from auth_service.errors import InvalidCredentials, RefreshTokenRefused, TenantRequired, TenantSuspended
from auth_service.models import RefreshToken, User
from auth_service.passwords import Passwords, check_email, check_password_policy, normalize_email
from auth_service.repository import RefreshTokenRepository, UserRepository
from auth_service.tokens import IssuedToken, TokenIssuer, new_refresh_token, refresh_token_hash

logger = logging.getLogger("auth.service")

ROLE_ADMIN = "admin"
Clock = Callable[[], datetime]

_REFRESH_REFUSALS: dict[RefreshDecision, tuple[str, str]] = {
    RefreshDecision.UNKNOWN: ("REFRESH_TOKEN_INVALID", "the refresh token is not valid"),
    RefreshDecision.REVOKED: ("REFRESH_TOKEN_INVALID", "the refresh token is not valid"),
    RefreshDecision.EXPIRED: ("REFRESH_TOKEN_EXPIRED", "the refresh token has expired"),
    RefreshDecision.REUSED: ("REFRESH_TOKEN_REUSED", "the refresh token was already used; please log in again"),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id, tenant_id=user.tenant_id, name=user.name, email=user.email, role=user.role,
        active=user.active, created_at=user.created_at,
    )


class AuthService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        passwords: Passwords,
        tokens: TokenIssuer,
        tenants: TenantDirectory,
        service_clients: Mapping[str, str],
        refresh_ttl_seconds: int,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._tokens = tokens
        self._tenants = tenants
        self._service_clients = dict(service_clients)
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self._clock = clock
        self._dummy_client_secret = secrets.token_urlsafe(32)

    # ------------------------------------------------------------------ register and login

    async def register(self, *, tenant_name: str, name: str, email: str, password: str) -> AuthSession:
        """A new tenant and its first admin. Everything is validated before the tenant is created."""
        clean_tenant = clean_name(tenant_name, field="tenant_name")
        clean_user = clean_name(name, field="name")
        clean_email = check_email(email)
        check_password_policy(password, email=clean_email)
        password_hash = await self._passwords.hash(password)
        tenant = await self._tenants.create_tenant(name=clean_tenant)
        now = self._clock()
        user = User(
            id=str(uuid.uuid4()), tenant_id=tenant.id, name=clean_user, email=clean_email,
            password_hash=password_hash, role=ROLE_ADMIN, active=True, password_changed_at=now,
            created_at=now, updated_at=now,
        )
        try:
            async with transaction(self._sessions, tenant_id=tenant.id) as session:
                await UserRepository(session).add(user)
                result = await self._start_session(session, user=user, tenant=tenant, family_id=None)
        except Exception:
            logger.error(
                "registration failed after its tenant was created; the tenant has no admin",
                extra={"tenant_id": tenant.id, "tenant_slug": tenant.slug},
                exc_info=True,
            )
            raise
        logger.info("tenant registered", extra={"tenant_id": tenant.id, "user_id": user.id})
        return result

    async def login(self, *, email: str, password: str, tenant_slug: str = "") -> AuthSession:
        """An unknown email, a wrong password and an inactive account give the same answer in the same time."""
        clean_email = normalize_email(email)
        tenant_id: str | None = None
        if tenant_slug.strip():
            tenant = await self._tenants.find_by_slug(slug=tenant_slug.strip().lower())
            if tenant is None:
                await self._passwords.burn(password)
                raise InvalidCredentials()
            tenant_id = tenant.id
        async with transaction(self._sessions) as session:
            candidates = await UserRepository(session).by_email(clean_email, tenant_id=tenant_id)
        if not candidates:
            await self._passwords.burn(password)
            raise InvalidCredentials()
        matches = [user for user in candidates if await self._passwords.verify(user.password_hash, password)]
        matches = [user for user in matches if user.active]
        if not matches:
            raise InvalidCredentials()
        if len(matches) > 1:
            raise TenantRequired()
        user = matches[0]
        tenant_info = await self._active_tenant(user.tenant_id)
        async with transaction(self._sessions, tenant_id=user.tenant_id) as session:
            if self._passwords.needs_rehash(user.password_hash):
                await UserRepository(session).set_password_hash(user.id, await self._passwords.hash(password))
            result = await self._start_session(session, user=user, tenant=tenant_info, family_id=None)
        logger.info("user logged in", extra={"tenant_id": user.tenant_id, "user_id": user.id})
        return result

    # ------------------------------------------------------------------ refresh tokens

    async def refresh(self, *, refresh_token: str) -> AuthSession:
        """Spends the refresh token and returns a new session in the same family.

        The row is locked (SELECT ... FOR UPDATE), so of two concurrent refreshes of one token only the first
        rotates; the second sees a spent token, which revokes the family.
        """
        token_hash = refresh_token_hash(refresh_token)
        now = self._clock()
        async with transaction(self._sessions) as session:
            peek = await RefreshTokenRepository(session).find(token_hash)
        tenant: TenantInfo | None = None
        if decide_refresh(peek, now=now) is RefreshDecision.ROTATE and peek is not None:
            tenant = await self._active_tenant(peek.tenant_id)  # before any lock: no RPC inside a transaction
        refusal: DomainError | None = None
        result: AuthSession | None = None
        async with transaction(self._sessions) as session:
            tokens = RefreshTokenRepository(session)
            row = await tokens.find(token_hash, for_update=True)
            decision = decide_refresh(row, now=now)
            if row is None or decision is not RefreshDecision.ROTATE:
                code, detail = _REFRESH_REFUSALS[decision]
                refusal = RefreshTokenRefused(detail, code=code)
                if row is not None and decision is RefreshDecision.REUSED:
                    await tokens.revoke_family(row.family_id, now)
                    logger.warning(
                        "refresh token reuse; family revoked",
                        extra={"tenant_id": row.tenant_id, "user_id": row.user_id, "family_id": row.family_id},
                    )
            else:
                user = await UserRepository(session).get(row.user_id)
                if user is None or not user.active or tenant is None or tenant.id != user.tenant_id:
                    await tokens.revoke_family(row.family_id, now)
                    refusal = RefreshTokenRefused("the refresh token is not valid", code="REFRESH_TOKEN_INVALID")
                else:
                    await tokens.mark_used(row.id, now)
                    result = await self._start_session(session, user=user, tenant=tenant, family_id=row.family_id)
        # raised after the commit, so a revocation is kept even though the call fails
        if refusal is not None:
            raise refusal
        if result is None:  # pragma: no cover - every path above sets one of the two
            raise RefreshTokenRefused("the refresh token is not valid")
        return result

    async def logout(self, *, refresh_token: str) -> None:
        """Revokes the token's whole family. Unknown tokens are ignored (logging out twice is fine)."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            tokens = RefreshTokenRepository(session)
            row = await tokens.find(refresh_token_hash(refresh_token), for_update=True)
            if row is not None:
                await tokens.revoke_family(row.family_id, now)
        if row is not None:
            logger.info("logged out", extra={"tenant_id": row.tenant_id, "user_id": row.user_id})

    # ------------------------------------------------------------------ the caller

    async def get_me(self, *, principal: Principal) -> Me:
        if principal.is_service:
            raise PermissionDenied("only a user has a profile", code="USER_ONLY")
        tenant_id = principal.require_tenant()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            user = await UserRepository(session).get(principal.subject)
        if user is None or user.tenant_id != tenant_id or not user.active:
            raise Unauthenticated("this account is no longer active", code="USER_INACTIVE")
        # the tenant service checks the caller's own token: the user sees only its own tenant
        tenant = await self._tenants.get_tenant(tenant_id=tenant_id, token=principal.token)
        return Me(user=user_view(user), tenant=tenant)

    def issue_service_token(self, *, service_name: str, client_secret: str) -> IssuedToken:
        """A short-lived service token, for a service named in EVA_SERVICE_CLIENTS with its secret."""
        expected = self._service_clients.get(service_name)
        reference = expected if expected is not None else self._dummy_client_secret
        matches = hmac.compare_digest(reference.encode(), client_secret.encode())
        if expected is None or not matches or not client_secret:
            logger.warning("service token refused", extra={"service": service_name[:64]})
            raise Unauthenticated("unknown service or wrong client secret", code="INVALID_CLIENT")
        return self._tokens.service_token(service_name=service_name)

    # ------------------------------------------------------------------ helpers

    async def _active_tenant(self, tenant_id: str) -> TenantInfo:
        tenant = await self._tenants.get_tenant(tenant_id=tenant_id)
        if tenant.status != TENANT_ACTIVE:
            raise TenantSuspended()
        return tenant

    async def _start_session(
        self, session: AsyncSession, *, user: User, tenant: TenantInfo, family_id: str | None
    ) -> AuthSession:
        now = self._clock()
        refresh_token = new_refresh_token()
        await RefreshTokenRepository(session).add(
            RefreshToken(
                id=str(uuid.uuid4()), family_id=family_id or str(uuid.uuid4()), user_id=user.id,
                tenant_id=user.tenant_id, token_hash=refresh_token_hash(refresh_token), issued_at=now,
                expires_at=now + self._refresh_ttl,
            )
        )
        access = self._tokens.user_token(
            user_id=user.id, tenant_id=user.tenant_id, role=user.role, name=user.name, email=user.email
        )
        return AuthSession(
            access_token=access.token, refresh_token=refresh_token, user=user_view(user), tenant=tenant,
            expires_in=access.expires_in,
        )
