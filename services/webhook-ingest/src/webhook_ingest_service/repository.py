"""Queries on webhook_events. Every write is idempotent, so a redelivered Kafka record changes nothing.

Row-level security: a tenant's rows are read and written only in a transaction with that tenant set; unrouted rows
(no tenant) go through the `webhook_record_unrouted` SECURITY DEFINER function, the app role cannot see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from eva_common.db import SessionFactory, transaction
from sqlalchemy.dialects.postgresql import JSONB, insert

from webhook_ingest_service.models import DeliveryState, WebhookEvent

_table = WebhookEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class UnroutedDelivery:
    delivery_id: str
    routing_key: str
    received_at: datetime
    payload: dict[str, Any]
    detail: str


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A tenant's stored delivery share, with what a replay republishes."""

    delivery_id: str
    tenant_id: str
    phone_number_id: str
    received_at: datetime
    state: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplayPosition:
    received_at: datetime
    delivery_id: str


class WebhookEventRepository:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def record_received(
        self,
        *,
        delivery_id: str,
        tenant_id: str,
        phone_number_id: str,
        received_at: datetime,
        payload: dict[str, Any],
    ) -> bool:
        """Logs a published delivery once; fills in a row an early outcome created. True when it wrote."""
        statement = insert(_table).values(
            delivery_id=delivery_id,
            tenant_id=tenant_id,
            phone_number_id=phone_number_id,
            received_at=received_at,
            state=DeliveryState.RECEIVED.value,
            payload=payload,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[_table.c.delivery_id],
            set_={
                "payload": statement.excluded.payload,
                "phone_number_id": statement.excluded.phone_number_id,
                "received_at": statement.excluded.received_at,
                "tenant_id": sa.func.coalesce(_table.c.tenant_id, statement.excluded.tenant_id),
                "updated_at": sa.func.now(),
            },
            where=_table.c.payload.is_(None),
        ).returning(_table.c.delivery_id)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            written = (await session.exec(upsert)).first()
        return written is not None

    async def record_outcome(
        self,
        *,
        delivery_id: str,
        tenant_id: str,
        state: DeliveryState,
        messages: int,
        statuses: int,
        detail: str | None,
        occurred_at: datetime,
    ) -> None:
        """Sets a delivery's processing outcome (last outcome wins; an outcome may arrive before the record)."""
        statement = insert(_table).values(
            delivery_id=delivery_id,
            tenant_id=tenant_id,
            received_at=occurred_at,
            state=state.value,
            messages=messages,
            statuses=statuses,
            detail=detail,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[_table.c.delivery_id],
            set_={
                "state": statement.excluded.state,
                "messages": statement.excluded.messages,
                "statuses": statement.excluded.statuses,
                "detail": statement.excluded.detail,
                "updated_at": sa.func.now(),
            },
        )
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await session.exec(statement)

    async def record_unrouted(self, deliveries: list[UnroutedDelivery]) -> None:
        """Keeps parts no tenant owns aside (once per delivery id), through the owner's SECURITY DEFINER function."""
        if not deliveries:
            return
        statement = sa.select(
            sa.func.webhook_record_unrouted(
                sa.bindparam("delivery_id", type_=sa.Text),
                sa.bindparam("routing_key", type_=sa.Text),
                sa.bindparam("received_at", type_=sa.DateTime(timezone=True)),
                sa.bindparam("payload", type_=JSONB),
                sa.bindparam("detail", type_=sa.Text),
            )
        )
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            for delivery in deliveries:
                await connection.execute(statement, {
                    "delivery_id": delivery.delivery_id,
                    "routing_key": delivery.routing_key,
                    "received_at": delivery.received_at,
                    "payload": delivery.payload,
                    "detail": delivery.detail,
                })

    async def get(self, delivery_id: str, *, tenant_id: str) -> WebhookEvent | None:
        """One of a tenant's delivery rows (unrouted rows belong to no tenant: never found here)."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            return await session.get(WebhookEvent, delivery_id)

    async def replay_page(
        self,
        *,
        received_from: datetime,
        received_to: datetime,
        tenant_id: str | None,
        state: str | None,
        after: ReplayPosition | None,
        limit: int,
    ) -> list[StoredDelivery]:
        """One page (oldest first) of the tenant-owned deliveries received in [from, to), across tenants, through
        the owner's `webhook_replay_page` SECURITY DEFINER function (the app role itself sees no row without a
        tenant set)."""
        statement = sa.text(
            "SELECT * FROM webhook_replay_page(:received_from, :received_to, :tenant_id, :state, :after_at, "
            ":after_id, :limit)"
        ).bindparams(
            sa.bindparam("received_from", type_=sa.DateTime(timezone=True)),
            sa.bindparam("received_to", type_=sa.DateTime(timezone=True)),
            sa.bindparam("tenant_id", type_=sa.Text),
            sa.bindparam("state", type_=sa.Text),
            sa.bindparam("after_at", type_=sa.DateTime(timezone=True)),
            sa.bindparam("after_id", type_=sa.Text),
            sa.bindparam("limit", type_=sa.Integer),
        )
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            rows = (await connection.execute(statement, {
                "received_from": received_from, "received_to": received_to, "tenant_id": tenant_id, "state": state,
                "after_at": after.received_at if after else None, "after_id": after.delivery_id if after else None,
                "limit": limit,
            })).all()
        return [
            StoredDelivery(delivery_id=row.delivery_id, tenant_id=row.tenant_id, phone_number_id=row.phone_number_id,
                           received_at=row.received_at, state=row.state, payload=row.payload)
            for row in rows
        ]
