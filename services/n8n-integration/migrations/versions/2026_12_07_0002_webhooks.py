"""outbound webhooks: subscriptions, deliveries, the per-tenant sequence, the consumer's inbox and the outbox, with
forced, fail-closed row-level security; the delivery worker's cross-tenant lease and the backlog figures are
SECURITY DEFINER functions owned by this migration's role

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import create_inbox_table, create_outbox_table, drop_outbox_rls, outbox_rls, tenant_rls
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("webhook_subscriptions", "webhook_deliveries", "webhook_sequences")

CLAIM_SIGNATURE = "claim_webhook_deliveries(integer, double precision)"
# The head of each (subscription, ordering key) line that is due, of active subscriptions only, leased by moving its
# next attempt past the lease (a worker that dies leaves it due again when the lease ends).
CLAIM_FUNCTION = """
CREATE FUNCTION claim_webhook_deliveries(batch integer, lease_seconds double precision)
RETURNS TABLE (delivery_id bigint, tenant_id text, lease_until timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    WITH due AS (
        SELECT d.id
          FROM webhook_deliveries AS d
          JOIN webhook_subscriptions AS s ON s.id = d.subscription_id AND s.state = 'active'
         WHERE d.state = 'pending' AND d.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e
                            WHERE e.subscription_id = d.subscription_id AND e.ordering_key = d.ordering_key
                              AND e.state = 'pending' AND e.id < d.id)
         ORDER BY d.next_attempt_at, d.id
         LIMIT batch
         FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries AS w
       SET next_attempt_at = now() + make_interval(secs => lease_seconds)
      FROM due
     WHERE w.id = due.id
    RETURNING w.id, w.tenant_id, w.next_attempt_at
$$
"""
STATS_SIGNATURE = "webhook_backlog()"
STATS_FUNCTION = """
CREATE FUNCTION webhook_backlog()
RETURNS TABLE (pending bigint, paused_subscriptions bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'),
           (SELECT count(*) FROM webhook_subscriptions WHERE state = 'paused')
$$
"""


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", ARRAY(sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="active"),
        sa.Column("paused_reason", sa.Text()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.Column("created_by", sa.Text()),
        sa.CheckConstraint("state IN ('active', 'paused')", name="webhook_subscriptions_state_check"),
    )
    op.create_index("webhook_subscriptions_tenant", "webhook_subscriptions", ["tenant_id", "id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(),
                  sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("ordering_key", sa.Text(), nullable=False),
        sa.Column("envelope", JSONB(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_latency_ms", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("subscription_id", "event_id", name="webhook_deliveries_subscription_event_key"),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="webhook_deliveries_state_check"),
    )
    op.create_index("webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index("webhook_deliveries_pending_order", "webhook_deliveries",
                    ["subscription_id", "ordering_key", "id"], postgresql_where=sa.text("state = 'pending'"))
    op.create_index("webhook_deliveries_tenant_id_desc", "webhook_deliveries", ["tenant_id", sa.text("id DESC")])
    op.create_index("webhook_deliveries_subscription_created", "webhook_deliveries",
                    ["subscription_id", "created_at"])

    op.create_table(
        "webhook_sequences",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
    )

    create_inbox_table()
    create_outbox_table()

    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)
    for statement in outbox_rls("outbox"):
        op.execute(statement)
    # The definer functions run as this migration's role, which FORCE binds too: these policies let that role alone
    # see and lease the rows. The app role is not a member of the owner role, so they never apply to it.
    op.execute("CREATE POLICY definer_claim_select ON webhook_deliveries FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("CREATE POLICY definer_claim_update ON webhook_deliveries FOR UPDATE TO CURRENT_USER USING (true) "
               "WITH CHECK (true)")
    op.execute("CREATE POLICY definer_claim_select ON webhook_subscriptions FOR SELECT TO CURRENT_USER USING (true)")
    op.execute(CLAIM_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {CLAIM_SIGNATURE} FROM PUBLIC")
    op.execute(STATS_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {STATS_SIGNATURE} FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {STATS_SIGNATURE}")
    op.execute(f"DROP FUNCTION {CLAIM_SIGNATURE}")
    for statement in drop_outbox_rls("outbox"):
        op.execute(statement)
    op.drop_table("outbox")
    op.drop_table("inbox")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
