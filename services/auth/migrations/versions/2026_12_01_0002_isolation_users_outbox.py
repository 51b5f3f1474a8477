"""Isolation and user management: row-level security on users and refresh_tokens, named SECURITY DEFINER lookups
for the moments before the tenant is known, soft-deleted users (a deleted user frees its email), and the
transactional outbox for audit events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import create_outbox_table, outbox_rls, tenant_rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("users", "refresh_tokens")

# Each lookup returns only what its caller needs. They run as their owner (the migration role, eva_owner), which
# row-level security also binds (FORCE): the `definer_lookup` policies below let that role alone read the rows.
# The app role (eva_app) is not a member of the owner role, so those policies never apply to it.
FUNCTIONS = {
    "auth_login_candidates(text)": """
CREATE FUNCTION auth_login_candidates(p_email text)
RETURNS TABLE (id text, tenant_id text, password_hash text, role text, active boolean, deleted boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT u.id, u.tenant_id, u.password_hash, u.role, u.active, u.deleted_at IS NOT NULL
    FROM users u
    WHERE u.email = lower(btrim(p_email))
    ORDER BY u.created_at, u.id
$$""",
    "auth_refresh_token_by_hash(text)": """
CREATE FUNCTION auth_refresh_token_by_hash(p_hash text)
RETURNS TABLE (id text, family_id text, user_id text, tenant_id text, issued_at timestamptz,
               expires_at timestamptz, used_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT r.id, r.family_id, r.user_id, r.tenant_id, r.issued_at, r.expires_at, r.used_at, r.revoked_at
    FROM refresh_tokens r
    WHERE r.token_hash = p_hash
$$""",
    "auth_user_tenant(text)": """
CREATE FUNCTION auth_user_tenant(p_user_id text)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT u.tenant_id FROM users u WHERE u.id = p_user_id AND u.deleted_at IS NULL
$$""",
}


def upgrade() -> None:
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.drop_constraint("uq_users_tenant_email", "users", type_="unique")
    op.create_index("uq_users_tenant_email_live", "users", ["tenant_id", "email"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_users_tenant_created", "users", ["tenant_id", "created_at", "id"])

    create_outbox_table()

    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)
        op.execute(f"CREATE POLICY definer_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    for statement in outbox_rls("outbox"):
        op.execute(statement)

    for signature, body in FUNCTIONS.items():
        op.execute(body)
        # only the roles granted EXECUTE (the app role, through the owner's default privileges) may call them
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS definer_lookup ON {table}")
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.drop_table("outbox")
    op.drop_index("ix_users_tenant_created", table_name="users")
    op.drop_index("uq_users_tenant_email_live", table_name="users")
    op.create_unique_constraint("uq_users_tenant_email", "users", ["tenant_id", "email"])
    op.drop_column("users", "deleted_at")
