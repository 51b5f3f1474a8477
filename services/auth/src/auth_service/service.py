"""Auth use cases: register, login (throttled), refresh-token rotation, logout, the caller's profile, service tokens
and the exchange of an API key for a short-lived token. User management lives in `users`."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from eva_common.audit import NO_META, RequestMeta
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import DomainError, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from eva_common.identity import ROLE_ADMIN, normalize_email
from eva_events.audit import AuditEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service import audit
from auth_service.audit import ANONYMOUS, Actor, AuditLog, audit_entry
from auth_service.clients import TenantDirectory
from auth_service.domain import (
    PLATFORM_TENANT_SLUG,
    TENANT_ACTIVE,
    ApiKeySession,
    AuthSession,
    LoginCandidate,
    Me,
    RefreshDecision,
    TenantInfo,
    clean_name,
    decide_refresh,
    user_view,
)
from auth_service.errors import (
    ApiKeyInvalid,
    InvalidCredentials,
    LoginThrottled,
    RefreshTokenRefused,
    TenantRequired,
    TenantSuspended,
)
from auth_service.models import RefreshToken, User
from auth_service.passwords import Passwords, check_email, check_password_policy
from auth_service.repository import RefreshTokenRepository, UserRepository
from auth_service.throttle import LoginThrottle, account_key
from auth_service.tokens import (
    IssuedToken,
    SuccessorPair,
    TokenIssuer,
    new_refresh_token,
    open_successor,
    refresh_token_hash,
    seal_successor,
)

logger = logging.getLogger("auth.service")

NO_CLIENT = NO_META
Clock = Callable[[], datetime]

_REFRESH_REFUSALS: dict[RefreshDecision, tuple[str, str]] = {
    RefreshDecision.UNKNOWN: ("REFRESH_TOKEN_INVALID", "the refresh token is not valid"),
    RefreshDecision.REVOKED: ("REFRESH_TOKEN_INVALID", "the refresh token is not valid"),
    RefreshDecision.EXPIRED: ("REFRESH_TOKEN_EXPIRED", "the refresh token has expired"),
    RefreshDecision.REUSED: ("REFRESH_TOKEN_REUSED", "the refresh token was already used; please log in again"),
}
# the decisions a refresh answers with a session: a rotation, or the same session again within the reuse grace
_ANSWERED = frozenset({RefreshDecision.ROTATE, RefreshDecision.REPLAY})
DEFAULT_REFRESH_REUSE_GRACE_SECONDS = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _failed_login(candidate: LoginCandidate, email: str, reason: str, client: RequestMeta) -> AuditEntry:
    return audit_entry(audit.LOGIN_FAILED, actor=ANONYMOUS, client=client, target_id=candidate.id,
                       outcome="failure", details={"reason": reason, "email": email})


class AuthService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        passwords: Passwords,
        tokens: TokenIssuer,
        tenants: TenantDirectory,
        throttle: LoginThrottle,
        audit_log: AuditLog,
        service_clients: Mapping[str, str],
        refresh_ttl_seconds: int,
        refresh_reuse_grace_seconds: float = DEFAULT_REFRESH_REUSE_GRACE_SECONDS,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._tokens = tokens
        self._tenants = tenants
        self._throttle = throttle
        self._audit = audit_log
        self._service_clients = dict(service_clients)
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self._reuse_grace = timedelta(seconds=refresh_reuse_grace_seconds)
        self._clock = clock
        self._dummy_client_secret = secrets.token_urlsafe(32)
        self._platform_id: str | None = None

    # ------------------------------------------------------------------ register and login

    async def register(
        self, *, tenant_name: str, name: str, email: str, password: str, client: RequestMeta = NO_CLIENT
    ) -> AuthSession:
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
                await self._audit.record(session, tenant_id=tenant.id, entry=audit_entry(
                    audit.REGISTERED, actor=Actor.user(user.id), client=client, target_id=user.id,
                    details={"role": user.role, "tenantName": tenant.name}))
        except Exception:
            logger.error(
                "registration failed after its tenant was created; the tenant has no admin",
                extra={"tenant_id": tenant.id, "tenant_slug": tenant.slug},
                exc_info=True,
            )
            raise
        logger.info("tenant registered", extra={"tenant_id": tenant.id, "user_id": user.id})
        return result

    async def login(
        self, *, email: str, password: str, tenant_slug: str = "", client: RequestMeta = NO_CLIENT
    ) -> AuthSession:
        """An unknown email, a wrong password and an inactive account give the same answer in the same time, and
        all count against the login throttle (per account and per client IP)."""
        clean_email = normalize_email(email)
        await self._throttle.count_ip(client.ip)
        async with transaction(self._sessions) as session:
            candidates = [c for c in await UserRepository(session).login_candidates(clean_email) if not c.deleted]
        slug = tenant_slug.strip().lower()
        if slug:
            tenant = await self._tenants.find_by_slug(slug=slug)
            candidates = [c for c in candidates if tenant is not None and c.tenant_id == tenant.id]
        keys = [account_key(c.tenant_id, clean_email) for c in candidates] or [account_key(None, clean_email)]
        decision = await self._throttle.count_accounts(keys)
        if not decision.allowed:
            if self._throttle.first_refusal(decision):
                self._audit_failed_login(candidates, email=clean_email, client=client, reason="throttled")
            raise LoginThrottled(retry_after=decision.retry_after)
        if not candidates:
            await self._passwords.burn(password)
            self._audit_failed_login(candidates, email=clean_email, client=client, reason="unknown_account")
            raise InvalidCredentials()
        verified = [c for c in candidates if await self._passwords.verify(c.password_hash, password)]
        matches = [c for c in verified if c.active]
        if not matches:
            self._audit_failed_login(candidates, email=clean_email, client=client, reason="invalid_credentials",
                                     inactive={c.id for c in verified})
            raise InvalidCredentials()
        if len(matches) > 1:
            raise TenantRequired()
        candidate = matches[0]
        try:
            tenant_info = await self._active_tenant(candidate.tenant_id)
        except TenantSuspended:
            self._audit_failed_login([candidate], email=clean_email, client=client, reason="tenant_suspended")
            raise
        rehash = self._passwords.needs_rehash(candidate.password_hash)
        async with transaction(self._sessions, tenant_id=candidate.tenant_id) as session:
            users = UserRepository(session)
            # the row lock orders this login with a concurrent deactivation or password change of the account
            user = await users.get(candidate.id, lock="update" if rehash else "share")
            if user is None or not user.active or user.password_hash != candidate.password_hash:
                raise InvalidCredentials()
            if rehash:
                await users.set_password_hash(user.id, await self._passwords.hash(password))
            result = await self._start_session(session, user=user, tenant=tenant_info, family_id=None)
            await self._audit.record(session, tenant_id=user.tenant_id, entry=audit_entry(
                audit.LOGIN_SUCCEEDED, actor=Actor.user(user.id), client=client, target_id=user.id))
        await self._throttle.clear_account(account_key(candidate.tenant_id, clean_email))
        logger.info("user logged in", extra={"tenant_id": user.tenant_id, "user_id": user.id})
        return result

    # ------------------------------------------------------------------ refresh tokens

    async def refresh(self, *, refresh_token: str, client: RequestMeta = NO_CLIENT) -> AuthSession:
        """Spends the refresh token and returns a new session in the same family.

        The token is found by its digest (a SECURITY DEFINER lookup: the tenant is not known yet); then, in that
        tenant's transaction, the user row and the token row are locked (users first, the order user changes use),
        so of concurrent refreshes of one token exactly one rotates. The rotation keeps the new session sealed under
        the spent token (in the same commit), so the others, and any presentation of that token within the reuse
        grace, get the very same session (`_replay`). A spent token presented after the grace revokes the family.
        """
        token_hash = refresh_token_hash(refresh_token)
        now = self._clock()
        async with transaction(self._sessions) as session:
            peek = await RefreshTokenRepository(session).peek(token_hash)
        if peek is None:
            raise RefreshTokenRefused("the refresh token is not valid", code="REFRESH_TOKEN_INVALID")
        tenant: TenantInfo | None = None
        if self._decide(peek, now) in _ANSWERED:
            tenant = await self._active_tenant(peek.tenant_id)  # before any lock: no RPC inside a transaction
        refusal: DomainError | None = None
        result: AuthSession | None = None
        async with transaction(self._sessions, tenant_id=peek.tenant_id) as session:
            tokens = RefreshTokenRepository(session)
            user = await UserRepository(session).get(peek.user_id, lock="share")
            row = await tokens.find(token_hash, for_update=True)
            decision = self._decide(row, now)
            successor: SuccessorPair | None = None
            if row is not None and decision is RefreshDecision.REPLAY:
                successor = await self._live_successor(tokens, row, refresh_token)
                decision = RefreshDecision.REPLAY if successor is not None else RefreshDecision.REUSED
            if row is None or decision not in _ANSWERED:
                code, detail = _REFRESH_REFUSALS[decision]
                refusal = RefreshTokenRefused(detail, code=code)
                if row is not None and decision is RefreshDecision.REUSED:
                    await tokens.revoke_family(row.family_id, now)
                    await self._audit.record(session, tenant_id=row.tenant_id, entry=audit_entry(
                        audit.REFRESH_TOKEN_REUSED, actor=ANONYMOUS, client=client, target_id=row.user_id,
                        outcome="failure", details={"familyId": row.family_id}))
                    logger.warning(
                        "refresh token reuse; family revoked",
                        extra={"tenant_id": row.tenant_id, "user_id": row.user_id, "family_id": row.family_id},
                    )
            elif user is None or not user.active or tenant is None or tenant.id != user.tenant_id:
                await tokens.revoke_family(row.family_id, now)
                refusal = RefreshTokenRefused("the refresh token is not valid", code="REFRESH_TOKEN_INVALID")
            elif successor is not None:
                result = self._replay(successor, user=user, tenant=tenant, spent_at=row.used_at or now, now=now)
                logger.info("refresh token presented again within the reuse grace; same session returned",
                            extra={"tenant_id": row.tenant_id, "user_id": row.user_id, "family_id": row.family_id})
            else:
                result = await self._start_session(session, user=user, tenant=tenant, family_id=row.family_id)
                await tokens.drop_stale_successors(row.family_id, spent_before=now - self._reuse_grace)
                sealed = None
                if self._reuse_grace > timedelta(0):
                    sealed = seal_successor(refresh_token, SuccessorPair(
                        access_token=result.access_token, refresh_token=result.refresh_token,
                        expires_in=result.expires_in))
                await tokens.mark_used(row.id, now, successor_sealed=sealed)
        # raised after the commit, so a revocation is kept even though the call fails
        if refusal is not None:
            raise refusal
        if result is None:  # pragma: no cover - every path above sets one of the two
            raise RefreshTokenRefused("the refresh token is not valid")
        return result

    async def logout(self, *, refresh_token: str, client: RequestMeta = NO_CLIENT) -> None:
        """Revokes the token's whole family. Unknown tokens are ignored (logging out twice is fine)."""
        token_hash = refresh_token_hash(refresh_token)
        now = self._clock()
        async with transaction(self._sessions) as session:
            peek = await RefreshTokenRepository(session).peek(token_hash)
        if peek is None:
            return
        async with transaction(self._sessions, tenant_id=peek.tenant_id) as session:
            tokens = RefreshTokenRepository(session)
            row = await tokens.find(token_hash, for_update=True)
            revoked = await tokens.revoke_family(row.family_id, now) if row is not None else 0
            if row is not None and revoked:
                await self._audit.record(session, tenant_id=row.tenant_id, entry=audit_entry(
                    audit.LOGOUT, actor=Actor.user(row.user_id), client=client, target_id=row.user_id))
        if revoked:
            logger.info("logged out", extra={"tenant_id": peek.tenant_id, "user_id": peek.user_id})

    # ------------------------------------------------------------------ the caller

    async def get_me(self, *, principal: Principal) -> Me:
        if principal.kind != "user":
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

    async def exchange_api_key(self, *, api_key: str) -> ApiKeySession:
        """The key is the credential: the tenant service finds it by its digest. Nothing is cached here."""
        if not api_key.strip() or len(api_key) > 512:
            raise ApiKeyInvalid()
        try:
            verified = await self._tenants.verify_api_key(api_key=api_key.strip())
        except (NotFound, Unauthenticated, InvalidArgument):
            raise ApiKeyInvalid() from None
        if not verified.valid or not verified.key_id or not verified.tenant_id:
            raise ApiKeyInvalid()
        if verified.tenant_status != TENANT_ACTIVE:
            raise TenantSuspended()
        issued = self._tokens.api_key_token(
            key_id=verified.key_id, tenant_id=verified.tenant_id, scopes=verified.scopes
        )
        return ApiKeySession(
            access_token=issued.token, expires_in=issued.expires_in, tenant_id=verified.tenant_id,
            scopes=verified.scopes, key_id=verified.key_id,
        )

    # ------------------------------------------------------------------ helpers

    def _audit_failed_login(
        self, candidates: list[LoginCandidate], *, email: str, client: RequestMeta, reason: str,
        inactive: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """One entry per account the attempt was aimed at, in its tenant; an attempt at no account goes to the
        platform tenant with the email's domain only (what was typed may be a misplaced password)."""
        if not candidates:
            domain = email.rpartition("@")[2][:253] if "@" in email else None
            self._audit.record_soon(tenant=self._platform_tenant_id, entry=audit_entry(
                audit.LOGIN_FAILED, actor=ANONYMOUS, client=client, outcome="failure",
                details={"reason": reason, "emailDomain": domain}))
            return
        for candidate in candidates:
            why = "inactive" if candidate.id in inactive else reason
            self._audit.record_soon(tenant=candidate.tenant_id, entry=_failed_login(candidate, email, why, client))

    async def _platform_tenant_id(self) -> str | None:
        """The platform tenant's id (found once, then remembered; not remembered while it does not exist)."""
        if self._platform_id is None:
            platform = await self._tenants.find_by_slug(slug=PLATFORM_TENANT_SLUG)
            self._platform_id = platform.id if platform is not None else None
        return self._platform_id

    def _decide(self, token: RefreshToken | None, now: datetime) -> RefreshDecision:
        return decide_refresh(token, now=now, reuse_grace=self._reuse_grace)

    @staticmethod
    async def _live_successor(
        tokens: RefreshTokenRepository, row: RefreshToken, refresh_token: str
    ) -> SuccessorPair | None:
        """The session the spent token's rotation handed out, while its refresh token is still live. A successor
        already spent (or gone) means the family moved on without this caller: that replay is reuse."""
        if row.successor_sealed is None:
            return None
        pair = open_successor(refresh_token, row.successor_sealed)
        if pair is None:
            return None
        successor = await tokens.find(refresh_token_hash(pair.refresh_token))
        if successor is None or successor.used_at is not None or successor.revoked_at is not None:
            return None
        return pair

    @staticmethod
    def _replay(
        pair: SuccessorPair, *, user: User, tenant: TenantInfo, spent_at: datetime, now: datetime
    ) -> AuthSession:
        """The same tokens as the rotation's answer; `expires_in` counts down from it."""
        elapsed = int((now - spent_at).total_seconds())
        return AuthSession(
            access_token=pair.access_token, refresh_token=pair.refresh_token, user=user_view(user), tenant=tenant,
            expires_in=max(0, pair.expires_in - max(0, elapsed)),
        )

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
