"""Queries on audit_logs (under the transaction's tenant): insert once, and keyset pages (occurred_at desc, id)."""

from __future__ import annotations

import sqlalchemy as sa
from eva_common.paging import Position
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service.audit_log.domain import AuditFilter
from tenant_service.models import AuditLog


class AuditLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, entry: AuditLog) -> bool:
        """Stores the entry unless its id (the event id) is already stored; True when stored now."""
        values = entry.model_dump(exclude={"recorded_at"})
        statement = pg_insert(AuditLog).values(**values).on_conflict_do_nothing().returning(col(AuditLog.id))
        return (await self._session.exec(statement)).first() is not None

    async def page(self, *, tenant_id: str, filters: AuditFilter, after: Position | None, limit: int) -> list[AuditLog]:
        statement = select(AuditLog).where(AuditLog.tenant_id == tenant_id)
        for column, value in (
            (AuditLog.actor_id, filters.actor_id),
            (AuditLog.action, filters.action),
            (AuditLog.target_type, filters.target_type),
            (AuditLog.target_id, filters.target_id),
        ):
            if value is not None:
                statement = statement.where(col(column) == value)
        occurred_at, entry_id = col(AuditLog.occurred_at), col(AuditLog.id)
        if filters.from_time is not None:
            statement = statement.where(occurred_at >= filters.from_time)
        if filters.to_time is not None:
            statement = statement.where(occurred_at < filters.to_time)
        if after is not None:
            statement = statement.where(sa.tuple_(occurred_at, entry_id) < sa.tuple_(after.time(), after.id))
        statement = statement.order_by(occurred_at.desc(), entry_id.desc()).limit(limit)
        return list((await self._session.exec(statement)).all())
