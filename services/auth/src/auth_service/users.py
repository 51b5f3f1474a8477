"""User management: list, read, create, change and (soft) delete the users of a tenant.

Rules: attendants may list and read but not manage (FORBIDDEN_ROLE); nobody grants a role above their own, and
`super_admin` only inside the super admin's own (platform) tenant (ROLE_NOT_ALLOWED); the last active admin of a
tenant cannot be deleted, deactivated or demoted (LAST_ADMIN); an email is unique among a tenant's live users
(EMAIL_TAKEN); a new or reactivated user needs a free seat of the tenant's plan (SEAT_LIMIT_REACHED). Another
tenant's user ids are simply not found. Changes of one tenant's users are serialized by a transaction-scoped
advisory lock, so the counts those rules read cannot race.

Deactivating, deleting or changing the password of a user revokes all of their refresh-token families and sets
their revocation time in Redis, so their access tokens are refused everywhere; a role change sets the revocation
time only (the next refresh carries the new role).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from eva_common.audit import NO_META, RequestMeta
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import AlreadyExists, FailedPrecondition, PermissionDenied, ResourceExhausted
from eva_common.identity import ADMIN_ROLES, ROLE_ADMIN, ROLE_ATTENDANT, ROLE_SUPER_ADMIN, role_rank
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service import audit
from auth_service.audit import Actor, AuditLog, audit_entry
from auth_service.clients import TenantDirectory
from auth_service.domain import (
    PLATFORM_TENANT_NAME,
    PLATFORM_TENANT_SLUG,
    NewUser,
    PlanLimits,
    UserChanges,
    UserPage,
    UserQuery,
    UserView,
    check_role,
    clean_name,
    user_view,
)
from auth_service.errors import UserNotFound
from auth_service.models import User
from auth_service.passwords import Passwords, check_email, check_password_policy
from auth_service.repository import RefreshTokenRepository, UserRepository

logger = logging.getLogger("auth.users")
USER_CURSOR = "users"

Clock = Callable[[], datetime]
NO_CLIENT = NO_META


class Revocations(Protocol):
    async def revoke(self, subject: str, *, at_ms: int | None = None) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _not_api_key(principal: Principal) -> None:
    if principal.is_api_key:
        raise PermissionDenied("API keys cannot use this call", code="API_KEY_NOT_ALLOWED")


def require_manager(principal: Principal) -> None:
    """Admins and super admins manage users; attendants, services and API keys do not."""
    _not_api_key(principal)
    if principal.kind != "user" or role_rank(principal.role) < role_rank(ROLE_ADMIN):
        raise PermissionDenied("your role cannot manage users", code="FORBIDDEN_ROLE")


def named_tenant_scope(principal: Principal, requested: str) -> str:
    """The tenant a list or create acts on: a user's own, a super admin's named one, a service's named one."""
    _not_api_key(principal)
    if principal.is_service:
        return principal.tenant_scope(requested)
    own = principal.require_tenant()
    if requested and requested != own:
        if principal.role != ROLE_SUPER_ADMIN:
            raise PermissionDenied("only a super admin may name another tenant", code="FORBIDDEN_ROLE")
        return requested
    return own


def check_grant(principal: Principal, *, role: str, tenant_id: str) -> None:
    """Nobody grants a role above their own; super_admin only inside the super admin's own tenant."""
    if role_rank(role) > role_rank(principal.role):
        raise PermissionDenied(f"you cannot grant the role {role!r}", code="ROLE_NOT_ALLOWED")
    if role == ROLE_SUPER_ADMIN and tenant_id != principal.tenant_id:
        raise PermissionDenied("super_admin exists only in the platform tenant", code="ROLE_NOT_ALLOWED")


def check_seats(limits: PlanLimits | None, *, active_users: int) -> None:
    """A plan with seats <= 0 has no seat limit."""
    if limits is not None and limits.seats > 0 and active_users >= limits.seats:
        raise ResourceExhausted(
            f"the plan {limits.plan!r} has {limits.seats} seats and all are taken", code="SEAT_LIMIT_REACHED"
        )


def email_taken() -> AlreadyExists:
    return AlreadyExists("a user of this tenant already has this email", code="EMAIL_TAKEN")


def last_admin() -> FailedPrecondition:
    return FailedPrecondition("the last active admin of a tenant cannot be removed or demoted", code="LAST_ADMIN")


class UserAdmin:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        passwords: Passwords,
        tenants: TenantDirectory,
        revocations: Revocations,
        audit_log: AuditLog,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._tenants = tenants
        self._revocations = revocations
        self._audit = audit_log
        self._clock = clock

    # ------------------------------------------------------------------ reads

    async def list_users(self, *, principal: Principal, query: UserQuery) -> UserPage:
        tenant_id = named_tenant_scope(principal, query.tenant_id)
        role = check_role(query.role) if query.role else ""
        after = decode_cursor(query.cursor, kind=USER_CURSOR, timed=True)
        limit = page_size(query.limit)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            rows = await UserRepository(session).page(
                tenant_id, after=(after.time(), after.id) if after else None, limit=limit + 1, role=role,
                q=query.q.strip()[:200], include_inactive=query.include_inactive,
            )
        items, more = rows[:limit], len(rows) > limit
        next_cursor = encode_cursor(Position(USER_CURSOR, items[-1].id, items[-1].created_at)) if more else ""
        return UserPage(items=[user_view(user) for user in items], next_cursor=next_cursor)

    async def get_user(self, *, principal: Principal, user_id: str) -> UserView:
        tenant_id = await self._tenant_of_target(principal, user_id)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            user = await UserRepository(session).get(user_id)
        if user is None:
            raise UserNotFound()
        return user_view(user)

    # ------------------------------------------------------------------ changes

    async def create_user(self, *, principal: Principal, data: NewUser, client: RequestMeta = NO_CLIENT) -> UserView:
        require_manager(principal)
        tenant_id = named_tenant_scope(principal, data.tenant_id)
        role = check_role(data.role or ROLE_ATTENDANT)
        check_grant(principal, role=role, tenant_id=tenant_id)
        name = clean_name(data.name, field="name")
        email = check_email(data.email)
        check_password_policy(data.password, email=email)
        password_hash = await self._passwords.hash(data.password)
        limits = await self._tenants.get_plan_limits(tenant_id=tenant_id)  # before any lock: no RPC inside
        now = self._clock()
        user = User(
            id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, email=email, password_hash=password_hash,
            role=role, active=True, password_changed_at=now, created_at=now, updated_at=now,
        )
        try:
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                users = UserRepository(session)
                await users.lock_tenant_users(tenant_id)
                if await users.email_taken(tenant_id, email):
                    raise email_taken()
                check_seats(limits, active_users=await users.count_active(tenant_id))
                await users.add(user)
                await self._audit.record(session, tenant_id=tenant_id, entry=audit_entry(
                    audit.USER_CREATED, actor=Actor.of(principal), client=client, target_id=user.id,
                    details={"role": role, "email": email}))
        except IntegrityError:
            raise email_taken() from None
        logger.info("user created", extra={"tenant_id": tenant_id, "user_id": user.id, "role": role})
        return user_view(user)

    async def update_user(
        self, *, principal: Principal, user_id: str, changes: UserChanges, client: RequestMeta = NO_CLIENT
    ) -> UserView:
        require_manager(principal)
        tenant_id = await self._tenant_of_target(principal, user_id)
        name = clean_name(changes.name, field="name") if changes.name is not None else None
        email = check_email(changes.email) if changes.email is not None else None
        role = check_role(changes.role) if changes.role is not None else None
        if role is not None:
            check_grant(principal, role=role, tenant_id=tenant_id)
        password_hash: str | None = None
        if changes.password is not None:
            check_password_policy(changes.password, email=email or "")
            password_hash = await self._passwords.hash(changes.password)
        limits = await self._tenants.get_plan_limits(tenant_id=tenant_id) if changes.active else None
        now = self._clock()
        changed: set[str] = set()
        ends_sessions = False
        try:
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                users = UserRepository(session)
                await users.lock_tenant_users(tenant_id)
                user = await users.get(user_id, lock="update")
                if user is None:
                    raise UserNotFound()
                if role_rank(user.role) > role_rank(principal.role):
                    raise PermissionDenied("you cannot change a user whose role is above yours",
                                           code="ROLE_NOT_ALLOWED")
                if changes.password is not None:
                    check_password_policy(changes.password, email=email or user.email)
                new_role = role if role is not None else user.role
                new_active = changes.active if changes.active is not None else user.active
                if user.active and user.role in ADMIN_ROLES and not (new_active and new_role in ADMIN_ROLES):
                    if await users.count_active_admins(tenant_id, excluding=user.id) == 0:
                        raise last_admin()
                if new_active and not user.active:
                    check_seats(limits, active_users=await users.count_active(tenant_id))
                if email is not None and email != user.email and await users.email_taken(
                    tenant_id, email, except_user_id=user.id
                ):
                    raise email_taken()
                changed = self._apply(user, name=name, email=email, role=new_role, active=new_active,
                                      password_hash=password_hash, now=now)
                ends_sessions = password_hash is not None or (user.active is False and "active" in changed)
                if changed:
                    user.updated_at = now
                    await users.save(user)
                    await self._record_update(session, principal=principal, user=user, changed=changed,
                                              client=client)
                if ends_sessions:
                    await RefreshTokenRepository(session).revoke_user(user.id, now)
        except IntegrityError:
            raise email_taken() from None
        if ends_sessions or "role" in changed:
            await self._revocations.revoke(user.id)  # after the commit: tokens issued before now are refused
        logger.info("user updated", extra={"tenant_id": tenant_id, "user_id": user.id, "fields": sorted(changed)})
        return user_view(user)

    async def delete_user(self, *, principal: Principal, user_id: str, client: RequestMeta = NO_CLIENT) -> None:
        """A soft delete: the row stays (audit, history) but the user is gone: its email is free again, it can never
        log in, its refresh tokens are revoked and its access tokens are refused."""
        require_manager(principal)
        tenant_id = await self._tenant_of_target(principal, user_id)
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            users = UserRepository(session)
            await users.lock_tenant_users(tenant_id)
            user = await users.get(user_id, lock="update")
            if user is None:
                raise UserNotFound()
            if role_rank(user.role) > role_rank(principal.role):
                raise PermissionDenied("you cannot delete a user whose role is above yours", code="ROLE_NOT_ALLOWED")
            if user.active and user.role in ADMIN_ROLES:
                if await users.count_active_admins(tenant_id, excluding=user.id) == 0:
                    raise last_admin()
            user.deleted_at = now
            user.active = False
            user.updated_at = now
            await users.save(user)
            await RefreshTokenRepository(session).revoke_user(user.id, now)
            await self._audit.record(session, tenant_id=tenant_id, entry=audit_entry(
                audit.USER_DELETED, actor=Actor.of(principal), client=client, target_id=user.id,
                details={"email": user.email, "role": user.role}))
        await self._revocations.revoke(user.id)
        logger.info("user deleted", extra={"tenant_id": tenant_id, "user_id": user.id})

    # ------------------------------------------------------------------ the platform's super admin

    async def seed_super_admin(self, *, email: str, password: str, name: str = "Super Admin") -> tuple[UserView, bool]:
        """The `platform` tenant (created through the tenant service when missing) and a super admin in it.
        Idempotent: an existing account with this email is left as it is (its password is not reset)."""
        clean_email = check_email(email)
        check_password_policy(password, email=clean_email)
        tenant = await self._tenants.find_by_slug(slug=PLATFORM_TENANT_SLUG)
        if tenant is None:
            tenant = await self._tenants.create_tenant(name=PLATFORM_TENANT_NAME, platform=True)
            if tenant.slug != PLATFORM_TENANT_SLUG:
                raise FailedPrecondition(f"the platform tenant got the slug {tenant.slug!r}", code="PLATFORM_SLUG")
        async with transaction(self._sessions, tenant_id=tenant.id) as session:
            users = UserRepository(session)
            await users.lock_tenant_users(tenant.id)
            existing = await users.find_by_email(tenant.id, clean_email)
            if existing is not None:
                return user_view(existing), False
            now = self._clock()
            user = User(
                id=str(uuid.uuid4()), tenant_id=tenant.id, name=clean_name(name, field="name"), email=clean_email,
                password_hash=await self._passwords.hash(password), role=ROLE_SUPER_ADMIN, active=True,
                password_changed_at=now, created_at=now, updated_at=now,
            )
            await users.add(user)
            await self._audit.record(session, tenant_id=tenant.id, entry=audit_entry(
                audit.USER_CREATED, actor=Actor(type="service", id="service:auth-seed"), client=NO_CLIENT,
                target_id=user.id, details={"role": ROLE_SUPER_ADMIN, "email": clean_email}))
        logger.info("super admin seeded", extra={"tenant_id": tenant.id, "user_id": user.id})
        return user_view(user), True

    # ------------------------------------------------------------------ helpers

    async def _tenant_of_target(self, principal: Principal, user_id: str) -> str:
        """The tenant to look for `user_id` in: the caller's own; a super admin's or a service's lookup of it."""
        _not_api_key(principal)
        if principal.is_service or principal.role == ROLE_SUPER_ADMIN:
            async with transaction(self._sessions) as session:
                found = await UserRepository(session).tenant_of(user_id)
            if found is None:
                raise UserNotFound()
            return found
        return principal.require_tenant()

    @staticmethod
    def _apply(
        user: User, *, name: str | None, email: str | None, role: str, active: bool, password_hash: str | None,
        now: datetime,
    ) -> set[str]:
        changed: set[str] = set()
        updates: dict[str, Any] = {"name": name, "email": email, "role": role, "active": active}
        for field, value in updates.items():
            if value is not None and getattr(user, field) != value:
                setattr(user, field, value)
                changed.add(field)
        if password_hash is not None:
            user.password_hash = password_hash
            user.password_changed_at = now
            changed.add("password")
        return changed

    async def _record_update(
        self, session: AsyncSession, *, principal: Principal, user: User, changed: set[str], client: RequestMeta
    ) -> None:
        actor = Actor.of(principal)
        if "password" in changed:
            await self._audit.record(session, tenant_id=user.tenant_id, entry=audit_entry(
                audit.PASSWORD_CHANGED, actor=actor, client=client, target_id=user.id))
        fields = sorted(changed - {"password"})
        if fields:
            details: dict[str, Any] = {"fields": fields}
            details.update({field: getattr(user, field) for field in fields})
            await self._audit.record(session, tenant_id=user.tenant_id, entry=audit_entry(
                audit.USER_UPDATED, actor=actor, client=client, target_id=user.id, details=details))
