"""webhook_events: the raw log of webhook deliveries and their processing state

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("delivery_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("phone_number_id", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("statuses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "state IN ('received', 'processed', 'failed', 'unrouted')", name="ck_webhook_events_state"
        ),
    )
    op.create_index("ix_webhook_events_tenant_received", "webhook_events", ["tenant_id", "received_at"])
    op.create_index("ix_webhook_events_state_received", "webhook_events", ["state", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_events_state_received", table_name="webhook_events")
    op.drop_index("ix_webhook_events_tenant_received", table_name="webhook_events")
    op.drop_table("webhook_events")
