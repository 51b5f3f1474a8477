"""outbox: row-level security (written per tenant; read across tenants only by the relay, which names itself)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from eva_common.migrations import drop_outbox_rls, outbox_rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in outbox_rls("outbox"):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_outbox_rls("outbox"):
        op.execute(statement)
