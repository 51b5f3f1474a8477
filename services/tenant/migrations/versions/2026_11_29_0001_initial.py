"""Initial tenant schema: tenants, whatsapp_credentials (sealed secrets) and the transactional outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("slug", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("plan", sa.Text, nullable=False, server_default="starter"),
        sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
        sa.Column("locale", sa.Text, nullable=False, server_default="en"),
        *_timestamps(),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenants_status"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_table(
        "whatsapp_credentials",
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("phone_number_id", sa.Text, nullable=False),
        sa.Column("waba_id", sa.Text, nullable=False),
        sa.Column("display_phone_number", sa.Text, nullable=False, server_default=""),
        sa.Column("access_token_ciphertext", sa.Text, nullable=False),
        sa.Column("app_secret_ciphertext", sa.Text, nullable=False),
        sa.Column("verify_token_ciphertext", sa.Text, nullable=False),
        sa.Column("verify_token_digest", sa.Text, nullable=False),
        sa.Column("access_token_last4", sa.Text, nullable=False),
        sa.Column("app_secret_last4", sa.Text, nullable=False),
        sa.Column("verify_token_last4", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("phone_number_id", name="uq_whatsapp_credentials_phone_number_id"),
    )
    op.create_index("ix_whatsapp_credentials_verify_token_digest", "whatsapp_credentials", ["verify_token_digest"])
    op.create_index("ix_whatsapp_credentials_key_id", "whatsapp_credentials", ["key_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("msg_key", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"))


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("whatsapp_credentials")
    op.drop_table("tenants")
