"""Queries of the tenant database; one small class per aggregate, each taking the caller's session.

Plain queries run under the transaction's tenant (row-level security). The lookups made before a tenant is known
call the SECURITY DEFINER functions of migration 0003, which return only what each lookup needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from eva_common.paging import Position
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.domain import TenantFilter, TenantView
from tenant_service.models import Plan, Tenant, WhatsAppCredentials
from tenant_service.slugs import MAX_SLUG_LENGTH

_SUFFIX_ROOM = 8  # a "-<number>" suffix may shorten a long base slug by this much


@dataclass(frozen=True, slots=True)
class PhoneOwner:
    tenant_id: str
    tenant_status: str
    app_secret_ciphertext: str

    def __repr__(self) -> str:
        return f"PhoneOwner(tenant_id={self.tenant_id!r}, tenant_status={self.tenant_status!r})"


def _tenant_view(row: Any) -> TenantView:
    return TenantView(id=row.id, name=row.name, slug=row.slug, status=row.status, plan=row.plan,
                      timezone=row.timezone, locale=row.locale, created_at=row.created_at,
                      read_receipts=row.read_receipts)


async def _rows(session: AsyncSession, query: str, **params: Any) -> list[Any]:
    connection = await session.connection()
    return list((await connection.execute(sa.text(query), params)).all())


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
        """The transaction's own tenant (row-level security hides every other)."""
        statement = select(Tenant).where(Tenant.id == tenant_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def by_slug(self, slug: str) -> TenantView | None:
        rows = await _rows(self._session, "SELECT * FROM tenant_by_slug(:slug)", slug=slug)
        return _tenant_view(rows[0]) if rows else None

    async def taken_slugs(self, base: str) -> set[str]:
        """Slugs of every tenant that could collide with `base` or its numbered variants (a superset is fine)."""
        prefix = base[: MAX_SLUG_LENGTH - _SUFFIX_ROOM]
        rows = await _rows(self._session, "SELECT tenant_slugs_like(:base, :prefix) AS slug", base=base,
                           prefix=prefix)
        return {row.slug for row in rows}

    async def page(self, *, filters: TenantFilter, after: Position | None, limit: int) -> list[TenantView]:
        """Every tenant (super admins), newest first, starting after `after`."""
        rows = await _rows(
            self._session,
            "SELECT * FROM tenants_page(:status, :q, :after_at, :after_id, :limit)",
            status=filters.status, q=filters.q, after_at=after.time() if after else None,
            after_id=after.id if after else None, limit=limit,
        )
        return [_tenant_view(row) for row in rows]

    async def plan(self, code: str) -> Plan | None:
        return (await self._session.exec(select(Plan).where(Plan.code == code))).first()

    async def add(self, tenant: Tenant) -> None:
        self._session.add(tenant)
        await self._session.flush()

    async def save(self, tenant: Tenant) -> None:
        self._session.add(tenant)
        await self._session.flush()


class CredentialsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def for_tenant(self, tenant_id: str, *, for_update: bool = False) -> WhatsAppCredentials | None:
        statement = select(WhatsAppCredentials).where(WhatsAppCredentials.tenant_id == tenant_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.exec(statement)).first()

    async def phone_number_owner(self, phone_number_id: str) -> PhoneOwner | None:
        rows = await _rows(self._session, "SELECT * FROM phone_number_owner(:number)", number=phone_number_id)
        if not rows:
            return None
        row = rows[0]
        return PhoneOwner(tenant_id=row.tenant_id, tenant_status=row.tenant_status,
                          app_secret_ciphertext=row.app_secret_ciphertext)

    async def waba_owners(self, waba_id: str) -> list[PhoneOwner]:
        """The tenants claiming a WhatsApp Business Account id (at most two: "more than one" is all that matters)."""
        rows = await _rows(self._session, "SELECT * FROM waba_owners(:waba)", waba=waba_id)
        return [PhoneOwner(tenant_id=row.tenant_id, tenant_status=row.tenant_status,
                           app_secret_ciphertext=row.app_secret_ciphertext) for row in rows]

    async def verify_token_owners(self, digest: str) -> list[str]:
        """The tenants using a verify token (at most two)."""
        rows = await _rows(self._session, "SELECT tenant_id FROM verify_token_owners(:digest)", digest=digest)
        return [row.tenant_id for row in rows]

    async def save(self, credentials: WhatsAppCredentials) -> None:
        self._session.add(credentials)
        await self._session.flush()
