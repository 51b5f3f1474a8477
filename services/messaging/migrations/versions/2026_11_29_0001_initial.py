"""messages, message_statuses, parked_statuses and outbox, with row-level security on the tenant tables

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import create_outbox_table, tenant_rls
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("messages", "message_statuses", "parked_statuses")


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

    create_outbox_table()

    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("parked_statuses")
    op.drop_table("message_statuses")
    op.drop_table("messages")
