"""the tenants' event log for `GET /n8n/events?afterSeq=`: every public event with its per-tenant seq, kept for a
while (the fan-out prunes a tenant's old rows as it writes new ones), with forced, fail-closed row-level security

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import tenant_rls
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "integration_events"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("envelope", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("integration_events_tenant_created", TABLE, ["tenant_id", "created_at"])
    for statement in tenant_rls(TABLE):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table(TABLE)
