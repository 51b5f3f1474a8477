"""the /n8n API's idempotency keys: one row per (tenant, API key, Idempotency-Key), claimed by the first request and
holding its answer for 24 hours, with forced, fail-closed row-level security

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import tenant_rls
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "n8n_idempotency_keys"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("api_key_id", sa.Text(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("request_hash", sa.Text(), nullable=False),
        # in_progress (claimed by `owner` until `locked_until`) | done (status_code and body are the answer)
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("owner", sa.Uuid(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("status_code", sa.Integer()),
        sa.Column("body", JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('in_progress', 'done')", name="n8n_idempotency_state"),
    )
    op.create_index("n8n_idempotency_expiry", TABLE, ["tenant_id", "expires_at"])
    for statement in tenant_rls(TABLE):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table(TABLE)
