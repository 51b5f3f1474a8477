"""webhook_events: row-level security; unrouted deliveries recorded through a SECURITY DEFINER function

A tenant's delivery rows are visible and writable only with that tenant set for the transaction. Unrouted rows
(tenant_id NULL: no tenant owns the phone number) are written by `webhook_record_unrouted(...)`, which runs as the
owner; a policy lets only the owner role see or write them, so the app role with no tenant set sees nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from eva_common.migrations import tenant_rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNROUTED = "tenant_id IS NULL AND state = 'unrouted'"
RECORD_UNROUTED = "webhook_record_unrouted(text, text, timestamptz, jsonb, text)"


def upgrade() -> None:
    for statement in tenant_rls("webhook_events"):
        op.execute(statement)
    # The owner role (the one running this migration, which owns the function below) and nobody else.
    op.execute(f"CREATE POLICY unrouted_owner ON webhook_events TO CURRENT_USER USING ({UNROUTED}) "
               f"WITH CHECK ({UNROUTED})")
    op.execute(
        """
        CREATE FUNCTION webhook_record_unrouted(
            p_delivery_id text, p_routing_key text, p_received_at timestamptz, p_payload jsonb, p_detail text
        ) RETURNS boolean
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
        DECLARE
            written integer;
        BEGIN
            INSERT INTO webhook_events (delivery_id, tenant_id, phone_number_id, received_at, state, payload, detail)
            VALUES (p_delivery_id, NULL, p_routing_key, p_received_at, 'unrouted', p_payload, p_detail)
            ON CONFLICT (delivery_id) DO NOTHING;
            GET DIAGNOSTICS written = ROW_COUNT;
            RETURN written > 0;
        END
        $$
        """
    )
    # EXECUTE for the app role comes from the schema's default privileges (owner -> app), not from PUBLIC.
    op.execute(f"REVOKE ALL ON FUNCTION {RECORD_UNROUTED} FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {RECORD_UNROUTED}")
    op.execute("DROP POLICY unrouted_owner ON webhook_events")
    op.execute("DROP POLICY tenant_isolation ON webhook_events")
    op.execute("ALTER TABLE webhook_events NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE webhook_events DISABLE ROW LEVEL SECURITY")
