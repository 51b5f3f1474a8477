"""the inbox: reopenable conversations with their last message, tags, escalations, and the list indexes

Conversations: last_message_at becomes NOT NULL (the inbox's sort key), plus last_message_preview and
last_inbound_at; one index per list filter, each led by tenant_id and ending in the sort key (last_message_at DESC,
id DESC) so a keyset page reads only its own rows. Contacts: pg_trgm GIN indexes for the case-insensitive search
over name and phone (pg_trgm is a trusted extension: the database owner may create it). New tables tags,
conversation_tags and escalations, each with forced, fail-closed row-level security.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import tenant_rls

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = ("tags", "conversation_tags", "escalations")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.execute("UPDATE conversations SET last_message_at = created_at WHERE last_message_at IS NULL")
    op.alter_column("conversations", "last_message_at", nullable=False, server_default=sa.func.now())
    op.add_column("conversations", sa.Column("last_message_preview", sa.Text()))
    op.add_column("conversations", sa.Column("last_inbound_at", sa.DateTime(timezone=True)))
    op.create_index("conversations_tenant_assignee_last_message", "conversations",
                    ["tenant_id", "assigned_to", sa.text("last_message_at DESC"), sa.text("id DESC")])
    op.create_index("conversations_tenant_unassigned_last_message", "conversations",
                    ["tenant_id", sa.text("last_message_at DESC"), sa.text("id DESC")],
                    postgresql_where=sa.text("assigned_to IS NULL"))
    op.create_index("conversations_tenant_updated", "conversations", ["tenant_id", "updated_at"])

    op.create_index("contacts_tenant_id_desc", "contacts", ["tenant_id", sa.text("id DESC")])
    op.create_index("contacts_name_trgm", "contacts", [sa.text("name gin_trgm_ops")], postgresql_using="gin")
    op.create_index("contacts_phone_trgm", "contacts", [sa.text("phone gin_trgm_ops")], postgresql_using="gin")

    op.create_table(
        "tags",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("color", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("color ~ '^#[0-9a-f]{6}$'", name="tags_color_check"),
    )
    op.create_index("tags_tenant_name_key", "tags", ["tenant_id", sa.text("lower(name)")], unique=True)

    op.create_table(
        "conversation_tags",
        sa.Column("conversation_id", sa.Uuid(), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag_id", sa.Uuid(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("conversation_tags_tenant_tag", "conversation_tags", ["tenant_id", "tag_id", "conversation_id"])

    op.create_table(
        "escalations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.Text()),
        sa.Column("acknowledged_by", sa.Text()),
        sa.Column("resolved_by", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="escalations_status_check"),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="escalations_priority_check"),
    )
    op.create_index("escalations_tenant_id_desc", "escalations", ["tenant_id", sa.text("id DESC")])
    op.create_index("escalations_tenant_status_id_desc", "escalations", ["tenant_id", "status", sa.text("id DESC")])
    op.create_index("escalations_tenant_conversation_id_desc", "escalations",
                    ["tenant_id", "conversation_id", sa.text("id DESC")])

    for table in NEW_TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(NEW_TENANT_TABLES):
        op.drop_table(table)
    op.drop_index("contacts_phone_trgm", table_name="contacts")
    op.drop_index("contacts_name_trgm", table_name="contacts")
    op.drop_index("contacts_tenant_id_desc", table_name="contacts")
    op.drop_index("conversations_tenant_updated", table_name="conversations")
    op.drop_index("conversations_tenant_unassigned_last_message", table_name="conversations")
    op.drop_index("conversations_tenant_assignee_last_message", table_name="conversations")
    op.drop_column("conversations", "last_inbound_at")
    op.drop_column("conversations", "last_message_preview")
    op.alter_column("conversations", "last_message_at", nullable=True, server_default=None)
