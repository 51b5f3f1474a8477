"""messages.media, messages.pricing_category and messages.reactions; media_jobs (retried media downloads) with row-level security and
the claim function the media worker uses before it knows the tenant

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
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

# Claims up to `batch` due jobs for `lease_seconds` (so a crashed worker's claim expires and the job is retried) and
# returns only what the worker needs to continue inside the job's tenant transaction.
CLAIM_FUNCTION = """
CREATE FUNCTION claim_media_jobs(batch integer, lease_seconds double precision)
RETURNS TABLE (job_id bigint, tenant_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    UPDATE media_jobs AS j
       SET next_attempt_at = now() + make_interval(secs => lease_seconds)
     WHERE j.id IN (SELECT d.id FROM media_jobs AS d
                     WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                     ORDER BY d.next_attempt_at
                     LIMIT batch
                     FOR UPDATE SKIP LOCKED)
    RETURNING j.id, j.tenant_id
$$
"""


def upgrade() -> None:
    op.add_column("messages", sa.Column("media", JSONB()))
    op.add_column("messages", sa.Column("pricing_category", sa.Text()))
    op.add_column("messages", sa.Column("reactions", JSONB()))
    op.create_table(
        "media_jobs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("media_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("message_id", name="media_jobs_message_key"),
        sa.CheckConstraint("state IN ('pending', 'done', 'failed')", name="media_jobs_state_check"),
    )
    op.create_index("media_jobs_due", "media_jobs", ["next_attempt_at"], postgresql_where=sa.text("state = 'pending'"))
    for statement in tenant_rls("media_jobs"):
        op.execute(statement)
    # The claim runs as its owner (this migration's role), which FORCE binds too: these policies let that role
    # alone see and lease due jobs. The app role is not a member of the owner role, so they never apply to it.
    op.execute("CREATE POLICY definer_claim_select ON media_jobs FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("CREATE POLICY definer_claim_update ON media_jobs FOR UPDATE TO CURRENT_USER USING (true) "
               "WITH CHECK (true)")
    op.execute(CLAIM_FUNCTION)
    # only the roles granted EXECUTE (the app role, through the owner's default privileges) may call it
    op.execute("REVOKE ALL ON FUNCTION claim_media_jobs(integer, double precision) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION claim_media_jobs(integer, double precision)")
    op.drop_table("media_jobs")
    op.drop_column("messages", "reactions")
    op.drop_column("messages", "pricing_category")
    op.drop_column("messages", "media")
