"""Queries on usage_daily and usage_delivered (under the transaction's tenant) and the tenant's plan."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.models import Plan, Tenant, UsageDaily, UsageDelivered
from tenant_service.usage.domain import COUNTED_DIRECTIONS


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

    async def mark_delivered(self, *, tenant_id: str, message_id: str, category: str, day: date) -> bool:
        """Remembers that a message was counted as delivered; False when it already was."""
        statement = (
            pg_insert(UsageDelivered)
            .values(tenant_id=tenant_id, message_id=message_id, category=category, day=day)
            .on_conflict_do_nothing(index_elements=["tenant_id", "message_id"])
            .returning(col(UsageDelivered.message_id))
        )
        return (await self._session.exec(statement)).first() is not None

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

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return (await self._session.exec(select(Tenant).where(Tenant.id == tenant_id))).first()

    async def plan(self, code: str) -> Plan | None:
        return (await self._session.exec(select(Plan).where(Plan.code == code))).first()
