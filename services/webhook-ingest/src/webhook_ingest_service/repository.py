"""Queries on webhook_events. Every write is idempotent, so a redelivered Kafka record changes nothing.

Row-level security: a tenant's rows are read and written only in a transaction with that tenant set; unrouted rows
(no tenant) go through the `webhook_record_unrouted` SECURITY DEFINER function, the app role cannot see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from eva_common.db import SessionFactory, set_tenant, transaction
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
class ReceivedDelivery:
    """A delivery ingest published (wa.webhooks.v1), for the delivery log."""

    delivery_id: str
    tenant_id: str
    phone_number_id: str
    received_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What messaging made of a delivery (webhook.outcomes.v1)."""

    delivery_id: str
    tenant_id: str
    state: DeliveryState
    messages: int
    statuses: int
    detail: str | None
    occurred_at: datetime


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
        return await self.record_received_many([ReceivedDelivery(
            delivery_id=delivery_id, tenant_id=tenant_id, phone_number_id=phone_number_id, received_at=received_at,
            payload=payload)]) == 1

    async def record_received_many(self, deliveries: Sequence[ReceivedDelivery]) -> int:
        """Logs published deliveries once each (the first copy of a delivery id wins), in one transaction: one
        statement per tenant. Returns how many rows it wrote."""
        groups: dict[str, dict[str, ReceivedDelivery]] = {}
        for delivery in deliveries:
            groups.setdefault(delivery.tenant_id, {}).setdefault(delivery.delivery_id, delivery)
        written = 0
        async with self._sessions() as session, session.begin():
            for tenant_id, group in groups.items():
                await set_tenant(session, tenant_id)
                statement = insert(_table).values([{
                    "delivery_id": item.delivery_id, "tenant_id": item.tenant_id,
                    "phone_number_id": item.phone_number_id, "received_at": item.received_at,
                    "state": DeliveryState.RECEIVED.value, "payload": item.payload,
                } for item in group.values()])
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
                written += len((await session.exec(upsert)).all())
        return written

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
        await self.record_outcomes([DeliveryOutcome(
            delivery_id=delivery_id, tenant_id=tenant_id, state=state, messages=messages, statuses=statuses,
            detail=detail, occurred_at=occurred_at)])

    async def record_outcomes(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Sets deliveries' outcomes (the last of a delivery id wins) in one transaction: one statement per tenant."""
        groups: dict[str, dict[str, DeliveryOutcome]] = {}
        for outcome in outcomes:
            groups.setdefault(outcome.tenant_id, {})[outcome.delivery_id] = outcome
        async with self._sessions() as session, session.begin():
            for tenant_id, group in groups.items():
                await set_tenant(session, tenant_id)
                statement = insert(_table).values([{
                    "delivery_id": item.delivery_id, "tenant_id": item.tenant_id, "received_at": item.occurred_at,
                    "state": item.state.value, "messages": item.messages, "statuses": item.statuses,
                    "detail": item.detail,
                } for item in group.values()])
                await session.exec(statement.on_conflict_do_update(
                    index_elements=[_table.c.delivery_id],
                    set_={
                        "state": statement.excluded.state,
                        "messages": statement.excluded.messages,
                        "statuses": statement.excluded.statuses,
                        "detail": statement.excluded.detail,
                        "updated_at": sa.func.now(),
                    },
                ))

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
