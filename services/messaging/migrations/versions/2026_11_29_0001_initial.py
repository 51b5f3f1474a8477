"""messages, message_statuses, parked_statuses and outbox, with row-level security on the tenant tables

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("messages", "message_statuses", "parked_statuses")
# Fail closed: with no tenant set for the transaction (app.tenant_id unset or ''), no row is visible or writable.
TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("wamid", sa.Text()),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("content", JSONB(), nullable=False),
        sa.Column("context", JSONB()),
        sa.Column("referral", JSONB()),
        sa.Column("error", JSONB()),
        sa.Column("raw", JSONB()),
        sa.Column("phone_number_id", sa.Text()),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "wamid", name="messages_tenant_wamid_key"),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="messages_direction_check"),
    )
    op.create_index("messages_conversation_order", "messages", ["tenant_id", "conversation_id", "sent_at", "id"])

    op.create_table(
        "message_statuses",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("wamid", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True)),
        sa.Column("recipient_id", sa.Text()),
        sa.Column("errors", JSONB()),
        sa.Column("payload", JSONB(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("message_id", "status", name="message_statuses_message_status_key"),
    )
    op.create_index("message_statuses_tenant_wamid", "message_statuses", ["tenant_id", "wamid"])

    op.create_table(
        "parked_statuses",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("wamid", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True)),
        sa.Column("recipient_id", sa.Text()),
        sa.Column("phone_number_id", sa.Text()),
        sa.Column("errors", JSONB()),
        sa.Column("payload", JSONB(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("tenant_id", "wamid", "status", name="parked_statuses_key"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("msg_key", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index("outbox_unsent", "outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"))

    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})"
        )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("parked_statuses")
    op.drop_table("message_statuses")
    op.drop_table("messages")
