"""Queries on webhook_events. Every write is idempotent, so a redelivered Kafka record changes nothing.

Row-level security: a tenant's rows are read and written only in a transaction with that tenant set; unrouted rows
(no tenant) go through the `webhook_record_unrouted` SECURITY DEFINER function, the app role cannot see them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from eva_common.db import SessionFactory, direct_transaction, engine_of, per_tenant, transaction
from sqlalchemy.dialects.postgresql import JSONB

from webhook_ingest_service.models import DeliveryState, WebhookEvent

_table = WebhookEvent.__table__  # type: ignore[attr-defined]

# The delivery log's two writes per delivery, as prepared statements over arrays (one statement for a batch of any
# size): a delivery published (the first copy wins; it fills in a row an early outcome created) and its outcome (the
# last one wins; it may come before the delivery record).
_RECORD_RECEIVED = """
INSERT INTO webhook_events (delivery_id, tenant_id, phone_number_id, received_at, state, payload)
SELECT d.delivery_id, $1, d.phone_number_id, d.received_at, 'received', d.payload::jsonb
FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS d(delivery_id, phone_number_id, received_at,
                                                                       payload)
ON CONFLICT (delivery_id) DO UPDATE SET
    payload = EXCLUDED.payload, phone_number_id = EXCLUDED.phone_number_id, received_at = EXCLUDED.received_at,
    tenant_id = coalesce(webhook_events.tenant_id, EXCLUDED.tenant_id), updated_at = now()
WHERE webhook_events.payload IS NULL
RETURNING delivery_id
"""
_RECORD_OUTCOMES = """
INSERT INTO webhook_events (delivery_id, tenant_id, received_at, state, messages, statuses, detail)
SELECT o.delivery_id, $1, o.received_at, o.state, o.messages, o.statuses, o.detail
FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::int[], $7::text[])
    AS o(delivery_id, received_at, state, messages, statuses, detail)
ON CONFLICT (delivery_id) DO UPDATE SET
    state = EXCLUDED.state, messages = EXCLUDED.messages, statuses = EXCLUDED.statuses, detail = EXCLUDED.detail,
    updated_at = now()
"""


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
        self._engine = engine_of(sessions)  # the log's batches: direct statements, no session

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
        statement per tenant, written directly (a row per delivery, the hot path). Returns how many rows it wrote."""
        firsts: dict[str, ReceivedDelivery] = {}
        for delivery in deliveries:
            firsts.setdefault(delivery.delivery_id, delivery)
        written = 0
        async with direct_transaction(self._engine) as connection:
            async for tenant_id, items in per_tenant(connection, firsts.values(), lambda item: item.tenant_id):
                rows = await connection.fetch(
                    _RECORD_RECEIVED, tenant_id, [item.delivery_id for item in items],
                    [item.phone_number_id for item in items], [item.received_at for item in items],
                    [json.dumps(item.payload) for item in items])
                written += len(rows)
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
        """Sets deliveries' outcomes (the last of a delivery id wins) in one transaction: one statement per tenant,
        written directly."""
        lasts = {outcome.delivery_id: outcome for outcome in outcomes}
        async with direct_transaction(self._engine) as connection:
            async for tenant_id, items in per_tenant(connection, lasts.values(), lambda item: item.tenant_id):
                await connection.execute(
                    _RECORD_OUTCOMES, tenant_id, [item.delivery_id for item in items],
                    [item.occurred_at for item in items], [item.state.value for item in items],
                    [item.messages for item in items], [item.statuses for item in items],
                    [item.detail for item in items])

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
