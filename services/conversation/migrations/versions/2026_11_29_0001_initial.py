"""contacts, conversations, inbox and outbox, with row-level security on the tenant tables

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import create_inbox_table, create_outbox_table, tenant_rls

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("contacts", "conversations")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("wa_id", sa.Text()),
        sa.Column("user_id", sa.Text()),
        sa.Column("name", sa.Text()),
        sa.Column("phone", sa.Text()),
        *_timestamps(),
    )
    op.create_index("contacts_tenant_wa_id_key", "contacts", ["tenant_id", "wa_id"], unique=True,
                    postgresql_where=sa.text("wa_id IS NOT NULL"))
    op.create_index("contacts_tenant_user_id_key", "contacts", ["tenant_id", "user_id"], unique=True,
                    postgresql_where=sa.text("user_id IS NOT NULL"))

    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), sa.ForeignKey("contacts.id"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="open"),
        sa.Column("assigned_to", sa.Text()),
        sa.Column("priority", sa.Text(), nullable=False, server_default="normal"),
        sa.Column("last_message_at", sa.DateTime(timezone=True)),
        sa.Column("window_expires_at", sa.DateTime(timezone=True)),
        sa.Column("unread_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("phone_number_id", sa.Text()),
        *_timestamps(),
        sa.CheckConstraint("status IN ('open', 'pending', 'resolved')", name="conversations_status_check"),
    )
    # At most one open or pending conversation per contact; a resolved one stays closed (the next message opens
    # a new conversation).
    op.create_index("conversations_one_active_per_contact", "conversations", ["tenant_id", "contact_id"],
                    unique=True, postgresql_where=sa.text("status <> 'resolved'"))
    op.create_index("conversations_tenant_last_message", "conversations",
                    ["tenant_id", sa.text("last_message_at DESC"), sa.text("id DESC")])
    op.create_index("conversations_tenant_status_last_message", "conversations",
                    ["tenant_id", "status", sa.text("last_message_at DESC"), sa.text("id DESC")])
    op.create_index("conversations_contact", "conversations", ["contact_id"])

    create_inbox_table()

    create_outbox_table()

    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("inbox")
    op.drop_table("conversations")
    op.drop_table("contacts")
