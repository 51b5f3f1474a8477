"""Outbound: who sent a message and where it came from (messages.sender, source, attempts, read_at, category);
outbound_jobs (the sender's queue: one job per outbound message, leased per conversation head, attendants first);
idempotency_keys; media_uploads (files stored for sending); templates and template_syncs; the SECURITY DEFINER
functions the sender and the template sync use before they know the tenant

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import tenant_rls
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("outbound_jobs", "idempotency_keys", "media_uploads", "templates", "template_syncs")

# Leases up to `batch` due jobs: pending ones whose time has come, and those whose sender's lease ran out (it
# died or hung between calling Meta and recording the answer: `recovered` tells the sender to look for the
# statuses of that send before it sends again). Only the oldest unfinished job of a conversation is due, so a
# conversation's messages leave in the order they were written, retries included; attendants' replies first.
CLAIM_FUNCTION = """
CREATE FUNCTION claim_outbound_jobs(batch integer, lease_seconds double precision)
RETURNS TABLE (job_id bigint, tenant_id text, recovered boolean)
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
    RETURNING j.id, j.tenant_id, due.recovered
$$
"""

# The tenants whose templates are due for their periodic sync.
DUE_SYNCS_FUNCTION = """
CREATE FUNCTION due_template_syncs(batch integer)
RETURNS TABLE (tenant_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    SELECT s.tenant_id FROM template_syncs AS s
     WHERE s.next_sync_at <= now()
     ORDER BY s.next_sync_at
     LIMIT batch
$$
"""


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.add_column("messages", sa.Column("sender", JSONB()))
    op.add_column("messages", sa.Column("source", sa.Text(), nullable=False, server_default="whatsapp"))
    op.add_column("messages", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("messages", sa.Column("read_at", sa.DateTime(timezone=True)))
    op.add_column("messages", sa.Column("category", sa.Text()))
    op.create_index("messages_unread_inbound", "messages", ["tenant_id", "conversation_id", "sent_at"],
                    postgresql_where=sa.text("direction = 'inbound' AND read_at IS NULL"))

    op.create_table(
        "outbound_jobs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("uncertain", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", JSONB()),
        *_timestamps(),
        sa.UniqueConstraint("message_id", name="outbound_jobs_message_key"),
        sa.CheckConstraint("state IN ('pending', 'sending', 'done', 'failed')", name="outbound_jobs_state_check"),
    )
    op.create_index("outbound_jobs_due", "outbound_jobs", ["priority", "id"],
                    postgresql_where=sa.text("state IN ('pending', 'sending')"))
    op.create_index("outbound_jobs_conversation", "outbound_jobs", ["tenant_id", "conversation_id", "id"],
                    postgresql_where=sa.text("state IN ('pending', 'sending')"))

    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="idempotency_keys_pkey"),
    )

    op.create_table(
        "media_uploads",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text()),
        # Meta's media id once uploaded to the Graph API (valid 30 days), and for which number.
        sa.Column("meta_media_id", sa.Text()),
        sa.Column("meta_phone_number_id", sa.Text()),
        sa.Column("meta_uploaded_at", sa.DateTime(timezone=True)),
        *_timestamps(),
    )

    op.create_table(
        "templates",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("waba_id", sa.Text(), nullable=False),
        sa.Column("meta_id", sa.Text()),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("category", sa.Text()),
        sa.Column("quality", sa.Text()),
        sa.Column("parameter_format", sa.Text()),
        sa.Column("components", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("rejected_reason", sa.Text()),
        *_timestamps(),
        sa.UniqueConstraint("tenant_id", "name", "language", name="templates_tenant_name_language_key"),
    )

    op.create_table(
        "template_syncs",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("waba_id", sa.Text()),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text()),
        *_timestamps(),
    )

    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)
    # The definer functions run as this migration's role, which FORCE binds too: these policies let that role alone
    # see and lease the rows. The app role is not a member of the owner role, so they never apply to it.
    op.execute("CREATE POLICY definer_claim_select ON outbound_jobs FOR SELECT TO CURRENT_USER USING (true)")
    op.execute("CREATE POLICY definer_claim_update ON outbound_jobs FOR UPDATE TO CURRENT_USER USING (true) "
               "WITH CHECK (true)")
    op.execute("CREATE POLICY definer_due_select ON template_syncs FOR SELECT TO CURRENT_USER USING (true)")
    op.execute(CLAIM_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION claim_outbound_jobs(integer, double precision) FROM PUBLIC")
    op.execute(DUE_SYNCS_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION due_template_syncs(integer) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION due_template_syncs(integer)")
    op.execute("DROP FUNCTION claim_outbound_jobs(integer, double precision)")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
    op.drop_index("messages_unread_inbound", table_name="messages")
    for column in ("category", "read_at", "attempts", "source", "sender"):
        op.drop_column("messages", column)
