"""Queries of the auth database; one small class per aggregate, each taking the caller's session."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import RefreshToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: str) -> User | None:
        return (await self._session.exec(select(User).where(User.id == user_id))).first()

    async def by_email(self, email: str, *, tenant_id: str | None = None) -> list[User]:
        """Every account with this email (one per tenant), or only the one in `tenant_id`."""
        statement = select(User).where(User.email == email)
        if tenant_id is not None:
            statement = statement.where(User.tenant_id == tenant_id)
        return list((await self._session.exec(statement.order_by(col(User.created_at)))).all())

    async def add(self, user: User) -> None:
        self._session.add(user)
        await self._session.flush()

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._session.exec(
            sa.update(User).where(col(User.id) == user_id).values(password_hash=password_hash)
        )


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, token_hash: str, *, for_update: bool = False) -> RefreshToken | None:
        statement = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def add(self, token: RefreshToken) -> None:
        self._session.add(token)
        await self._session.flush()

    async def mark_used(self, token_id: str, at: datetime) -> None:
        await self._session.exec(
            sa.update(RefreshToken).where(col(RefreshToken.id) == token_id).values(used_at=at)
        )

    async def revoke_family(self, family_id: str, at: datetime) -> int:
        result = await self._session.exec(
            sa.update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=at)
        )
        return int(getattr(result, "rowcount", 0) or 0)
