"""Queries on api_keys: under the transaction's tenant, except the digest lookup (a SECURITY DEFINER function)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.models import ApiKey


@dataclass(frozen=True, slots=True)
class KeyByDigest:
    """What the digest lookup returns: the key's row (not its digest) and its tenant's status."""

    id: str
    tenant_id: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    tenant_status: str


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        self._session.add(key)
        await self._session.flush()

    async def get(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        statement = select(ApiKey).where(ApiKey.id == key_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def listing(self, *, include_revoked: bool) -> list[ApiKey]:
        statement = select(ApiKey).order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
        if not include_revoked:
            statement = statement.where(col(ApiKey.revoked_at).is_(None))
        return list((await self._session.exec(statement)).all())

    async def count_active(self, *, now: datetime) -> int:
        statement = select(func.count()).select_from(ApiKey).where(
            col(ApiKey.revoked_at).is_(None),
            sa.or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > now),
        )
        return int((await self._session.exec(statement)).one())

    async def save(self, key: ApiKey) -> None:
        self._session.add(key)
        await self._session.flush()

    async def by_digest(self, digest: str) -> KeyByDigest | None:
        connection = await self._session.connection()
        row = (await connection.execute(sa.text("SELECT * FROM api_key_by_digest(:digest)"),
                                        {"digest": digest})).first()
        if row is None:
            return None
        return KeyByDigest(id=row.id, tenant_id=row.tenant_id, scopes=tuple(row.scopes), expires_at=row.expires_at,
                           revoked_at=row.revoked_at, last_used_at=row.last_used_at, tenant_status=row.tenant_status)

    async def touch(self, key_id: str, *, now: datetime, unless_used_since: datetime) -> bool:
        """Sets last_used_at unless it is already at or after `unless_used_since` (throttles the writes)."""
        statement = (
            sa.update(ApiKey)
            .where(col(ApiKey.id) == key_id)
            .where(sa.or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < unless_used_since))
            .values(last_used_at=now)
        )
        result = await self._session.exec(statement)
        return bool(result.rowcount)
