"""Refresh-token reuse grace: a spent token keeps its successor session, sealed under the spent token, for the
grace interval, so a concurrent refresh of the same token gets the same answer instead of revoking the family.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("successor_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "successor_sealed")
