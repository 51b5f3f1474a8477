"""Plans (seeded), API keys (HMAC digests), daily usage, the consumers' inbox and the append-only audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import create_inbox_table
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLANS = (
    # code, name, monthly message quota, seats
    ("starter", "Starter", 10_000, 5),
    ("pro", "Pro", 100_000, 25),
    ("enterprise", "Enterprise", 1_000_000, 200),
)
CATEGORIES = "('service', 'utility', 'marketing', 'authentication')"

# Revokes privileges from every role the table's owner granted them to (the app role gets them from the schema's
# default privileges, whatever its name), and from PUBLIC.
REVOKE_FROM_GRANTEES = """
DO $$
DECLARE
    grantee_name text;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT r.rolname
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'public.{table}'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE {privileges} ON public.{table} FROM %I', grantee_name);
    END LOOP;
    REVOKE {privileges} ON public.{table} FROM PUBLIC;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("monthly_message_quota", sa.BigInteger, nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.CheckConstraint("monthly_message_quota >= 0 AND seats >= 1", name="ck_plans_limits"),
    )
    plans = sa.table("plans", sa.column("code"), sa.column("name"), sa.column("monthly_message_quota"),
                     sa.column("seats"))
    op.bulk_insert(plans, [{"code": code, "name": name, "monthly_message_quota": quota, "seats": seats}
                           for code, name, quota, seats in PLANS])
    op.execute(REVOKE_FROM_GRANTEES.format(table="plans", privileges="INSERT, UPDATE, DELETE, TRUNCATE"))
    op.create_foreign_key("fk_tenants_plan", "tenants", "plans", ["plan"], ["code"])
    op.create_index("ix_tenants_created_at_id", "tenants", [sa.text("created_at DESC"), sa.text("id DESC")])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("digest", name="uq_api_keys_digest"),
        sa.CheckConstraint("cardinality(scopes) >= 1", name="ck_api_keys_scopes"),
    )
    op.create_index("ix_api_keys_tenant_created", "api_keys", ["tenant_id", sa.text("created_at DESC")])

    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("direction", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"category IN {CATEGORIES}", name="ck_usage_daily_category"),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_usage_daily_direction"),
    )

    create_inbox_table()

    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Text, primary_key=True),  # the event id: an entry delivered twice is stored once
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("actor_type", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target_type", sa.Text),
        sa.Column("target_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("ip", sa.Text),
        sa.Column("user_agent", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("actor_type IN ('user', 'api_key', 'service', 'anonymous')", name="ck_audit_logs_actor"),
        sa.CheckConstraint("outcome IN ('success', 'failure')", name="ck_audit_logs_outcome"),
    )
    for name, columns in (
        ("ix_audit_logs_tenant_time", []),
        ("ix_audit_logs_tenant_actor_time", ["actor_id"]),
        ("ix_audit_logs_tenant_action_time", ["action"]),
        ("ix_audit_logs_tenant_target_time", ["target_type", "target_id"]),
    ):
        op.create_index(name, "audit_logs",
                        ["tenant_id", *columns, sa.text("occurred_at DESC"), sa.text("id DESC")])
    # Append-only: nobody but the owner keeps UPDATE/DELETE/TRUNCATE, and a trigger refuses them even to the owner.
    op.execute(REVOKE_FROM_GRANTEES.format(table="audit_logs", privileges="UPDATE, DELETE, TRUNCATE"))
    op.execute(
        """
        CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute("CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs "
               "FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()")
    op.execute("CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()")


def downgrade() -> None:
    op.drop_table("audit_logs")
    op.execute("DROP FUNCTION audit_logs_append_only()")
    op.drop_table("inbox")
    op.drop_table("usage_daily")
    op.drop_table("api_keys")
    op.drop_index("ix_tenants_created_at_id", "tenants")
    op.drop_constraint("fk_tenants_plan", "tenants", type_="foreignkey")
    op.drop_table("plans")
