"""Queries on usage_daily (under the transaction's tenant) and the tenant's plan."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.models import Plan, Tenant, UsageDaily


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def increment(
        self, *, tenant_id: str, day: date, category: str, direction: str, now: datetime, by: int = 1
    ) -> None:
        statement = pg_insert(UsageDaily).values(
            tenant_id=tenant_id, day=day, category=category, direction=direction, count=by, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["tenant_id", "day", "category", "direction"],
            set_={"count": col(UsageDaily.count) + statement.excluded.count, "updated_at": now},
        )
        await self._session.exec(statement)

    async def days(self, *, tenant_id: str, start: date, end: date) -> list[UsageDaily]:
        statement = (
            select(UsageDaily)
            .where(UsageDaily.tenant_id == tenant_id, col(UsageDaily.day) >= start, col(UsageDaily.day) <= end)
            .order_by(col(UsageDaily.day), col(UsageDaily.category), col(UsageDaily.direction))
        )
        return list((await self._session.exec(statement)).all())

    async def total(self, *, tenant_id: str, start: date, end: date) -> int:
        statement = select(func.coalesce(func.sum(UsageDaily.count), 0)).where(
            UsageDaily.tenant_id == tenant_id, col(UsageDaily.day) >= start, col(UsageDaily.day) <= end
        )
        return int((await self._session.exec(statement)).one())

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return (await self._session.exec(select(Tenant).where(Tenant.id == tenant_id))).first()

    async def plan(self, code: str) -> Plan | None:
        return (await self._session.exec(select(Plan).where(Plan.code == code))).first()
