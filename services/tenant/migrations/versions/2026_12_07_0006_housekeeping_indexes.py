"""BRIN indexes for housekeeping: published outbox rows and inbox claims past their retention are deleted by the
outbox relay's leader (eva_common.housekeeping); these make a pass with nothing to delete cheap

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op
from eva_common.migrations import drop_housekeeping_indexes, housekeeping_indexes

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in housekeeping_indexes(inbox=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_housekeeping_indexes():
        op.execute(statement)
