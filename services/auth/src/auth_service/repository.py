"""Queries of the auth database; one small class per aggregate, each taking the caller's session.

Every query runs in a transaction that has set its tenant (row-level security). The few lookups made before the
tenant is known go through the named SECURITY DEFINER functions of the migrations (`auth_login_candidates`,
`auth_refresh_token_by_hash`, `auth_user_tenant`), which return only what their caller needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from eva_common.identity import ADMIN_ROLES
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.domain import LoginCandidate
from auth_service.models import RefreshToken, User

USERS_LOCK_NAMESPACE = 7_411_003  # pg_advisory_xact_lock(namespace, hashtext(tenant_id))
RowLock = Literal["share", "update"]


async def _rows(session: AsyncSession, query: str, **params: Any) -> list[sa.Row[Any]]:
    connection = await session.connection()
    return list((await connection.execute(sa.text(query), params)).all())


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: str, *, lock: RowLock | None = None) -> User | None:
        """A live (not deleted) user of the transaction's tenant."""
        statement = select(User).where(User.id == user_id, col(User.deleted_at).is_(None))
        if lock == "share":
            statement = statement.with_for_update(read=True)
        elif lock == "update":
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def find_by_email(self, tenant_id: str, email: str) -> User | None:
        statement = select(User).where(
            User.tenant_id == tenant_id, User.email == email, col(User.deleted_at).is_(None)
        )
        return (await self._session.exec(statement)).first()

    async def add(self, user: User) -> None:
        self._session.add(user)
        await self._session.flush()

    async def save(self, user: User) -> None:
        self._session.add(user)
        await self._session.flush()

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._session.exec(
            sa.update(User).where(col(User.id) == user_id).values(password_hash=password_hash)
        )

    async def lock_tenant_users(self, tenant_id: str) -> None:
        """Serializes user changes within one tenant (seat counts, the last-admin rule, email uniqueness)."""
        await _rows(self._session, "SELECT pg_advisory_xact_lock(:namespace, hashtext(:tenant_id))",
                    namespace=USERS_LOCK_NAMESPACE, tenant_id=tenant_id)

    async def email_taken(self, tenant_id: str, email: str, *, except_user_id: str | None = None) -> bool:
        statement = select(User.id).where(
            User.tenant_id == tenant_id, User.email == email, col(User.deleted_at).is_(None)
        )
        if except_user_id is not None:
            statement = statement.where(User.id != except_user_id)
        return (await self._session.exec(statement)).first() is not None

    async def count_active(self, tenant_id: str) -> int:
        """Seats in use: live, active users."""
        statement = select(sa.func.count()).select_from(User).where(
            User.tenant_id == tenant_id, col(User.active).is_(True), col(User.deleted_at).is_(None)
        )
        return int((await self._session.exec(statement)).one())

    async def count_active_admins(self, tenant_id: str, *, excluding: str) -> int:
        statement = select(sa.func.count()).select_from(User).where(
            User.tenant_id == tenant_id, col(User.active).is_(True), col(User.deleted_at).is_(None),
            col(User.role).in_(ADMIN_ROLES), User.id != excluding,
        )
        return int((await self._session.exec(statement)).one())

    async def page(
        self,
        tenant_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        role: str = "",
        q: str = "",
        include_inactive: bool = False,
    ) -> list[User]:
        """Live users in (created_at, id) order, after the keyset cursor; `q` matches name or email."""
        statement = select(User).where(User.tenant_id == tenant_id, col(User.deleted_at).is_(None))
        if not include_inactive:
            statement = statement.where(col(User.active).is_(True))
        if role:
            statement = statement.where(User.role == role)
        if q:
            pattern = f"%{_escape_like(q)}%"
            statement = statement.where(
                sa.or_(col(User.name).ilike(pattern, escape="\\"), col(User.email).ilike(pattern, escape="\\"))
            )
        if after is not None:
            statement = statement.where(sa.tuple_(col(User.created_at), col(User.id)) > sa.tuple_(*after))
        statement = statement.order_by(col(User.created_at), col(User.id)).limit(limit)
        return list((await self._session.exec(statement)).all())

    async def login_candidates(self, email: str) -> list[LoginCandidate]:
        """Every account with this email, in any tenant (SECURITY DEFINER: the tenant is not known yet)."""
        rows = await _rows(
            self._session,
            "SELECT id, tenant_id, password_hash, role, active, deleted FROM auth_login_candidates(:email)",
            email=email,
        )
        return [
            LoginCandidate(id=row.id, tenant_id=row.tenant_id, password_hash=row.password_hash, role=row.role,
                           active=row.active, deleted=row.deleted)
            for row in rows
        ]

    async def tenant_of(self, user_id: str) -> str | None:
        """The tenant of a live user, whatever the caller's tenant (SECURITY DEFINER; for super admins)."""
        rows = await _rows(self._session, "SELECT auth_user_tenant(:user_id) AS tenant_id", user_id=user_id)
        tenant_id: str | None = rows[0].tenant_id if rows else None
        return tenant_id


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def peek(self, token_hash: str) -> RefreshToken | None:
        """The token with this digest, whatever its tenant (SECURITY DEFINER: the tenant is not known yet)."""
        rows = await _rows(
            self._session,
            "SELECT id, family_id, user_id, tenant_id, issued_at, expires_at, used_at, revoked_at "
            "FROM auth_refresh_token_by_hash(:token_hash)",
            token_hash=token_hash,
        )
        if not rows:
            return None
        row = rows[0]
        return RefreshToken(
            id=row.id, family_id=row.family_id, user_id=row.user_id, tenant_id=row.tenant_id, token_hash=token_hash,
            issued_at=row.issued_at, expires_at=row.expires_at, used_at=row.used_at, revoked_at=row.revoked_at,
        )

    async def find(self, token_hash: str, *, for_update: bool = False) -> RefreshToken | None:
        statement = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def add(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def mark_used(self, token_id: str, at: datetime, *, successor_sealed: bytes | None = None) -> None:
        await self._session.exec(
            sa.update(RefreshToken).where(col(RefreshToken.id) == token_id)
            .values(used_at=at, successor_sealed=successor_sealed)
        )

    async def drop_stale_successors(self, family_id: str, *, spent_before: datetime) -> None:
        """Forgets the sealed successors of the family's tokens spent before the reuse grace began."""
        await self._session.exec(
            sa.update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.successor_sealed).is_not(None),
                   col(RefreshToken.used_at) <= spent_before)
            .values(successor_sealed=None)
        )

    async def revoke_family(self, family_id: str, at: datetime) -> int:
        result = await self._session.exec(
            sa.update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=at, successor_sealed=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def revoke_user(self, user_id: str, at: datetime) -> int:
        """Revokes every family of the user (deactivation, deletion, password change)."""
        result = await self._session.exec(
            sa.update(RefreshToken)
            .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=at, successor_sealed=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)
