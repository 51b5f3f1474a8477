"""Tables of the n8n-integration service: the tenants' webhook subscriptions, their deliveries, the per-tenant
sequence of the events delivered, and the consumer's inbox and the outbox. Every tenant-owned row carries its tenant;
row-level security (see the migrations) backs up the tenant every statement names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eva_common.ids import new_id
from eva_common.outbox import OutboxEvent
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

__all__ = [
    "DELIVERED",
    "DEAD",
    "PENDING",
    "PAUSED",
    "ACTIVE",
    "OutboxEvent",
    "WebhookDelivery",
    "WebhookSequence",
    "WebhookSubscription",
]

ACTIVE = "active"
PAUSED = "paused"
SUBSCRIPTION_STATES = (ACTIVE, PAUSED)
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(sa.DateTime(timezone=True), nullable=True)
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class WebhookSubscription(SQLModel, table=True):
    """Where a tenant wants its events: a URL (checked against the SSRF policy), the public event types it asked
    for, and its signing secret, sealed (eva_common.crypto, scope `eva.n8n`, field `webhook_secret:<id>`)."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        sa.CheckConstraint("state IN ('active', 'paused')", name="webhook_subscriptions_state_check"),
        sa.Index("webhook_subscriptions_tenant", "tenant_id", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    url: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    secret: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # sealed, never in clear
    events: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.Text), nullable=False))
    state: str = Field(default=ACTIVE, sa_column=sa.Column(sa.Text, nullable=False, server_default=ACTIVE))
    paused_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    consecutive_failures: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    failing_since: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    created_by: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: the exact envelope to send, its state (pending → delivered | dead), its
    attempts and the last one's outcome. `id` orders a subscription's deliveries of one ordering key (the
    conversation, else the tenant): a delivery is attempted only when no older one of that key is pending."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id", name="webhook_deliveries_subscription_event_key"),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="webhook_deliveries_state_check"),
        sa.Index("webhook_deliveries_due", "next_attempt_at", postgresql_where=sa.text("state = 'pending'")),
        sa.Index("webhook_deliveries_pending_order", "subscription_id", "ordering_key", "id",
                 postgresql_where=sa.text("state = 'pending'")),
        sa.Index("webhook_deliveries_tenant_id_desc", "tenant_id", sa.text("id DESC")),
        sa.Index("webhook_deliveries_subscription_created", "subscription_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    subscription_id: uuid.UUID = Field(sa_column=sa.Column(
        sa.Uuid, sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False))
    event_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    event_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    ordering_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    envelope: dict[str, Any] = Field(sa_column=sa.Column(JSONB, nullable=False))
    state: str = Field(default=PENDING, sa_column=sa.Column(sa.Text, nullable=False, server_default=PENDING))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    last_status_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    last_latency_ms: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    delivered_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class WebhookSequence(SQLModel, table=True):
    """The last `seq` given to a tenant's delivered events (the envelope's `seq`: increasing per tenant)."""

    __tablename__ = "webhook_sequences"

    tenant_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    last_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
