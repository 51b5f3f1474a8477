"""Tables of the tenant database (eva_tenant). The outbox table comes from eva_common.outbox.

Every tenant-owned table has row-level security forced (see migrations/versions/*_isolation.py): queries run in
`eva_common.db.transaction(..., tenant_id=...)`, and cross-tenant lookups go through SECURITY DEFINER functions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class TenantModel(SQLModel, registry=registry()):
    """Base of this service's tables: a metadata of their own, so no other service's tables mix in."""


def _timestamp() -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class Tenant(TenantModel, table=True):
    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenants_status"),
        sa.CheckConstraint("read_receipts IN ('on_read', 'never')", name="ck_tenants_read_receipts"),
    )

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    slug: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="active"))
    plan: str = Field(
        sa_column=sa.Column(sa.Text, sa.ForeignKey("plans.code"), nullable=False, server_default="starter")
    )
    timezone: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="UTC"))
    locale: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="en"))
    # on_read: Meta's read receipts (and typing indicators) when an attendant reads; never: none
    read_receipts: str = Field(default="on_read",
                               sa_column=sa.Column(sa.Text, nullable=False, server_default="on_read"))
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class WhatsAppCredentials(TenantModel, table=True):
    """One WhatsApp Business number per tenant. Secrets are sealed by crypto.SecretBox; only last4 is clear."""

    __tablename__ = "whatsapp_credentials"
    __table_args__ = (
        sa.CheckConstraint("throughput_mps BETWEEN 0 AND 1000", name="ck_whatsapp_credentials_throughput_mps"),
        sa.CheckConstraint("health_status IN ('healthy', 'unhealthy')", name="ck_whatsapp_credentials_health_status"),
    )

    tenant_id: str = Field(
        sa_column=sa.Column(sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    )
    phone_number_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    waba_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    display_phone_number: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    access_token_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    app_secret_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_digest: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    access_token_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    app_secret_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    # the number is also used in the WhatsApp Business app (Meta caps it at 20 messages/s)
    coexistence: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    # messages per second Eva may send; 0: the default for the number's kind (80, or 20 with coexistence)
    throughput_mps: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    health_status: str = Field(default="healthy",
                               sa_column=sa.Column(sa.Text, nullable=False, server_default="healthy"))
    health_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))  # Meta's error code, e.g. 190
    health_detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    health_since: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())

    def __repr__(self) -> str:
        return f"WhatsAppCredentials(tenant_id={self.tenant_id!r}, phone_number_id={self.phone_number_id!r})"


class Plan(TenantModel, table=True):
    """Reference data seeded by migration (starter, pro, enterprise); the app role may only read it."""

    __tablename__ = "plans"

    code: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    monthly_message_quota: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    seats: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))


class ApiKey(TenantModel, table=True):
    """An API key of a tenant: only its HMAC digest is stored (the key itself is shown once, at creation)."""

    __tablename__ = "api_keys"

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    tenant_id: str = Field(
        sa_column=sa.Column(sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    prefix: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    digest: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    scopes: list[str] = Field(sa_column=sa.Column(postgresql.ARRAY(sa.Text), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(sa_column=_timestamp())
    last_used_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, tenant_id={self.tenant_id!r}, prefix={self.prefix!r})"


class UsageDaily(TenantModel, table=True):
    """Messages counted per tenant, per day (in the tenant's timezone), per category and direction (inbound,
    outbound, or delivered: an outbound message Meta delivered, counted once more on the day it was delivered)."""

    __tablename__ = "usage_daily"

    tenant_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    category: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    direction: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    updated_at: datetime = Field(sa_column=_timestamp())


class UsageDelivered(TenantModel, table=True):
    """The outbound messages already counted as delivered (direction `delivered` in usage_daily), once each."""

    __tablename__ = "usage_delivered"

    tenant_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    message_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    category: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    day: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    counted_at: datetime = Field(sa_column=_timestamp())


class InboxEntry(TenantModel, table=True):
    """Events a consumer has applied (written in the same transaction as their effect): a redelivery is a no-op."""

    __tablename__ = "inbox"

    consumer: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    event_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    processed_at: datetime = Field(sa_column=_timestamp())


class AuditLog(TenantModel, table=True):
    """One audit event, stored once (its id is the event id). Append-only: the app role may only read and insert,
    and a trigger refuses UPDATE, DELETE and TRUNCATE for everyone."""

    __tablename__ = "audit_logs"

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    actor_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    actor_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    action: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    target_type: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    target_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    outcome: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    ip: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    user_agent: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(postgresql.JSONB, nullable=False))
    occurred_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    recorded_at: datetime | None = Field(default=None, sa_column=_timestamp())  # set by the database


metadata = TenantModel.metadata
