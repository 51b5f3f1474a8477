"""parked_statuses: an index on when each status was parked, and the SECURITY DEFINER functions with which the
expiry job deletes, across tenants, the statuses parked longer than Meta retries (their message will never come)
and counts those still parked

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Deletes at most `batch` statuses parked more than `max_age_seconds` ago, oldest first, and returns how many it
# deleted (nothing about them: the caller only counts). Rows another transaction holds (a replica's pass, or the
# message arriving and taking its statuses) are skipped, so replicas running it at the same moment share the rows
# and a short batch means nothing else is due.
EXPIRE_FUNCTION = """
CREATE FUNCTION expire_parked_statuses(max_age_seconds double precision, batch integer)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    WITH due AS (
        SELECT o.id FROM parked_statuses AS o
         WHERE o.created_at < now() - make_interval(secs => max_age_seconds)
         ORDER BY o.created_at
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    ), expired AS (
        DELETE FROM parked_statuses AS p USING due WHERE p.id = due.id
        RETURNING p.id
    )
    SELECT count(*) FROM expired
$$
"""

# How many statuses are parked, all tenants together (for the gauge).
COUNT_FUNCTION = """
CREATE FUNCTION count_parked_statuses()
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT count(*) FROM parked_statuses
$$
"""


def upgrade() -> None:
    op.create_index("parked_statuses_created_at", "parked_statuses", ["created_at"])
    # The functions run as their owner (this migration's role), which FORCE binds too: these policies let that role
    # alone see, lock (FOR UPDATE needs an UPDATE policy) and delete parked statuses of every tenant. The app role is
    # not a member of the owner role, so they never apply to it.
    op.execute("CREATE POLICY definer_expiry_select ON parked_statuses FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("CREATE POLICY definer_expiry_lock ON parked_statuses FOR UPDATE TO CURRENT_USER USING (true) "
               "WITH CHECK (false)")
    op.execute("CREATE POLICY definer_expiry_delete ON parked_statuses FOR DELETE TO CURRENT_USER USING (true)")
    op.execute(EXPIRE_FUNCTION)
    op.execute(COUNT_FUNCTION)
    # only the roles granted EXECUTE (the app role, through the owner's default privileges) may call them
    op.execute("REVOKE ALL ON FUNCTION expire_parked_statuses(double precision, integer) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION count_parked_statuses() FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION count_parked_statuses()")
    op.execute("DROP FUNCTION expire_parked_statuses(double precision, integer)")
    op.execute("DROP POLICY definer_expiry_delete ON parked_statuses")
    op.execute("DROP POLICY definer_expiry_lock ON parked_statuses")
    op.execute("DROP POLICY definer_expiry_select ON parked_statuses")
    op.drop_index("parked_statuses_created_at", table_name="parked_statuses")
