"""Queries on usage_daily and usage_delivered (under the transaction's tenant) and the tenant's plan."""

from __future__ import annotations

from datetime import date, datetime

from eva_common.db import driver
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.models import Plan, Tenant, UsageDaily
from tenant_service.usage.domain import COUNTED_DIRECTIONS

# the usage consumer's statements (every counted message), written directly in the session's transaction
_INCREMENT = (
    "INSERT INTO usage_daily AS u (tenant_id, day, category, direction, count, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, day, category, direction) "
    "DO UPDATE SET count = u.count + excluded.count, updated_at = excluded.updated_at")
_MARK_DELIVERED = (
    "INSERT INTO usage_delivered (tenant_id, message_id, category, day) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (tenant_id, message_id) DO NOTHING RETURNING message_id")
_TIMEZONE = "SELECT timezone FROM tenants WHERE id = $1"


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def increment(
        self, *, tenant_id: str, day: date, category: str, direction: str, now: datetime, by: int = 1
    ) -> None:
        await (await driver(self._session)).execute(_INCREMENT, tenant_id, day, category, direction, by, now)

    async def mark_delivered(self, *, tenant_id: str, message_id: str, category: str, day: date) -> bool:
        """Remembers that a message was counted as delivered; False when it already was."""
        return await (await driver(self._session)).fetchval(
            _MARK_DELIVERED, tenant_id, message_id, category, day) is not None

    async def days(self, *, tenant_id: str, start: date, end: date) -> list[UsageDaily]:
        statement = (
            select(UsageDaily)
            .where(UsageDaily.tenant_id == tenant_id, col(UsageDaily.day) >= start, col(UsageDaily.day) <= end)
            .order_by(col(UsageDaily.day), col(UsageDaily.category), col(UsageDaily.direction))
        )
        return list((await self._session.exec(statement)).all())

    async def total(self, *, tenant_id: str, start: date, end: date) -> int:
        """Inbound and outbound messages of the days (what the quota counts; `delivered` is not a new message)."""
        statement = select(func.coalesce(func.sum(UsageDaily.count), 0)).where(
            UsageDaily.tenant_id == tenant_id, col(UsageDaily.day) >= start, col(UsageDaily.day) <= end,
            col(UsageDaily.direction).in_(COUNTED_DIRECTIONS),
        )
        return int((await self._session.exec(statement)).one())

    async def timezone(self, tenant_id: str) -> str | None:
        """The tenant's timezone (its calendar days), None for an unknown tenant."""
        value: str | None = await (await driver(self._session)).fetchval(_TIMEZONE, tenant_id)
        return value

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return (await self._session.exec(select(Tenant).where(Tenant.id == tenant_id))).first()

    async def plan(self, code: str) -> Plan | None:
        return (await self._session.exec(select(Plan).where(Plan.code == code))).first()
