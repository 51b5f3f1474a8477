"""Queries of the tenant database; one small class per aggregate, each taking the caller's session."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.models import Tenant, WhatsAppCredentials
from tenant_service.slugs import MAX_SLUG_LENGTH

_SUFFIX_ROOM = 8  # a "-<number>" suffix may shorten a long base slug by this much


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
        statement = select(Tenant).where(Tenant.id == tenant_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def get_by_slug(self, slug: str) -> Tenant | None:
        return (await self._session.exec(select(Tenant).where(Tenant.slug == slug))).first()

    async def taken_slugs(self, base: str) -> set[str]:
        """Slugs that could collide with `base` or its numbered variants (a superset is fine)."""
        prefix = base[: MAX_SLUG_LENGTH - _SUFFIX_ROOM]
        slug = col(Tenant.slug)
        statement = select(Tenant.slug).where(
            sa.or_(slug == base, sa.and_(slug.startswith(prefix, autoescape=True), slug.regexp_match("-[0-9]+$")))
        )
        return set((await self._session.exec(statement)).all())

    async def add(self, tenant: Tenant) -> None:
        self._session.add(tenant)
        await self._session.flush()


class CredentialsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def for_tenant(self, tenant_id: str) -> WhatsAppCredentials | None:
        statement = select(WhatsAppCredentials).where(WhatsAppCredentials.tenant_id == tenant_id)
        return (await self._session.exec(statement)).first()

    async def by_phone_number_id(self, phone_number_id: str) -> WhatsAppCredentials | None:
        statement = select(WhatsAppCredentials).where(WhatsAppCredentials.phone_number_id == phone_number_id)
        return (await self._session.exec(statement)).first()

    async def by_verify_token_digest(self, digest: str, *, limit: int = 2) -> list[WhatsAppCredentials]:
        statement = (
            select(WhatsAppCredentials)
            .where(WhatsAppCredentials.verify_token_digest == digest)
            .order_by(col(WhatsAppCredentials.updated_at).desc())
            .limit(limit)
        )
        return list((await self._session.exec(statement)).all())

    async def save(self, credentials: WhatsAppCredentials) -> None:
        self._session.add(credentials)
        await self._session.flush()
