"""Tables of the tenant database (eva_tenant). The outbox table comes from eva_common.outbox."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class TenantModel(SQLModel, registry=registry()):
    """Base of this service's tables: a metadata of their own, so no other service's tables mix in."""


def _timestamp() -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class Tenant(TenantModel, table=True):
    __tablename__ = "tenants"
    __table_args__ = (sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenants_status"),)

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    slug: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="active"))
    plan: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="starter"))
    timezone: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="UTC"))
    locale: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="en"))
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class WhatsAppCredentials(TenantModel, table=True):
    """One WhatsApp Business number per tenant. Secrets are sealed by crypto.SecretBox; only last4 is clear."""

    __tablename__ = "whatsapp_credentials"

    tenant_id: str = Field(
        sa_column=sa.Column(sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    )
    phone_number_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    waba_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    display_phone_number: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    access_token_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    app_secret_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_ciphertext: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_digest: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    access_token_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    app_secret_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    verify_token_last4: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())

    def __repr__(self) -> str:
        return f"WhatsAppCredentials(tenant_id={self.tenant_id!r}, phone_number_id={self.phone_number_id!r})"


metadata = TenantModel.metadata
