"""The raw log of webhook deliveries and their processing state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class DeliveryState(StrEnum):
    RECEIVED = "received"  # appended to wa.webhooks.v1, not processed yet
    PROCESSED = "processed"  # messaging stored what it carried
    FAILED = "failed"  # messaging gave up on it (see detail)
    UNROUTED = "unrouted"  # verified, but no tenant owns its phone number: kept aside, never published


class WebhookEvent(SQLModel, table=True):
    """One delivery part: a tenant's share of a Meta delivery (or an unrouted share)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.CheckConstraint("state IN ('received', 'processed', 'failed', 'unrouted')", name="ck_webhook_events_state"),
        sa.Index("ix_webhook_events_tenant_received", "tenant_id", "received_at"),
        sa.Index("ix_webhook_events_state_received", "state", "received_at"),
    )

    delivery_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    tenant_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # The phone number id the part was routed by (the WABA id for account-level changes).
    phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    received_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    state: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # NULL only while an outcome has arrived before the delivery record itself.
    payload: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    messages: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    statuses: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
