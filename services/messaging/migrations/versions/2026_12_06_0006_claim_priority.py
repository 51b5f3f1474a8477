"""claim_outbound_jobs also returns each job's priority, so the sender orders what it leased (attendants' replies
first) without relying on the order of UPDATE … RETURNING

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BODY = """
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    WITH due AS (
        SELECT d.id, d.state = 'sending' AS recovered
          FROM outbound_jobs AS d
         WHERE ((d.state = 'pending' AND d.next_attempt_at <= now())
                OR (d.state = 'sending' AND d.lease_until <= now()))
           AND NOT EXISTS (SELECT 1 FROM outbound_jobs AS e
                            WHERE e.tenant_id = d.tenant_id AND e.conversation_id = d.conversation_id
                              AND e.state IN ('pending', 'sending') AND e.id < d.id)
         ORDER BY d.priority, d.id
         LIMIT batch
         FOR UPDATE SKIP LOCKED
    )
    UPDATE outbound_jobs AS j
       SET state = 'sending', lease_until = now() + make_interval(secs => lease_seconds), updated_at = now()
      FROM due
     WHERE j.id = due.id
    RETURNING {returning}
$$
"""
SIGNATURE = "claim_outbound_jobs(integer, double precision)"


def _create(columns: str, returning: str) -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.execute(f"CREATE FUNCTION claim_outbound_jobs(batch integer, lease_seconds double precision) "
               f"RETURNS TABLE ({columns})" + _BODY.format(returning=returning))
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def upgrade() -> None:
    _create("job_id bigint, tenant_id text, recovered boolean, priority smallint",
            "j.id, j.tenant_id, due.recovered, j.priority")


def downgrade() -> None:
    _create("job_id bigint, tenant_id text, recovered boolean", "j.id, j.tenant_id, due.recovered")
