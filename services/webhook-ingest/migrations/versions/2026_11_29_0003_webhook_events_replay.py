"""webhook_events: the operator's replay reads stored deliveries across tenants through a SECURITY DEFINER function

`webhook_replay_page(from, to, tenant, state, after_received_at, after_id, limit)` returns one keyset page of the
tenant-owned deliveries (never unrouted ones) received in [from, to), optionally of one tenant and one state, with
exactly what a replay republishes. It runs as the owner and sets `app.role = 'webhook-replay'` only around its own
query (restoring the previous value), and a SELECT-only policy for the owner role alone admits rows only under that
setting: the owner sees no more than before outside the function, and the app role, which may call it, gets no
policy at all (setting app.role itself gains it nothing).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLAY_PAGE = "webhook_replay_page(timestamptz, timestamptz, text, text, timestamptz, text, integer)"
REPLAYING = "current_setting('app.role', true) = 'webhook-replay'"


def upgrade() -> None:
    op.execute(f"CREATE POLICY replay_reader ON webhook_events FOR SELECT TO CURRENT_USER USING ({REPLAYING})")
    op.execute(
        f"""
        CREATE FUNCTION {REPLAY_PAGE}
        RETURNS TABLE (delivery_id text, tenant_id text, phone_number_id text, received_at timestamptz, state text,
                       payload jsonb)
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
        DECLARE
            previous text := current_setting('app.role', true);
        BEGIN
            PERFORM set_config('app.role', 'webhook-replay', true);
            RETURN QUERY
                SELECT e.delivery_id, e.tenant_id, e.phone_number_id, e.received_at, e.state, e.payload
                FROM webhook_events e
                WHERE e.tenant_id IS NOT NULL AND e.payload IS NOT NULL AND e.phone_number_id IS NOT NULL
                  AND e.state <> 'unrouted'
                  AND e.received_at >= $1 AND e.received_at < $2
                  AND ($3 IS NULL OR e.tenant_id = $3)
                  AND ($4 IS NULL OR e.state = $4)
                  AND ($5 IS NULL OR (e.received_at, e.delivery_id) > ($5, $6))
                ORDER BY e.received_at, e.delivery_id
                LIMIT least(greatest($7, 1), 500);
            PERFORM set_config('app.role', coalesce(previous, ''), true);
        END
        $$
        """
    )
    # EXECUTE for the app role comes from the schema's default privileges (owner -> app), not from PUBLIC.
    op.execute(f"REVOKE ALL ON FUNCTION {REPLAY_PAGE} FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {REPLAY_PAGE}")
    op.execute("DROP POLICY replay_reader ON webhook_events")
