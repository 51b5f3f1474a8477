"""Row-level security on every tenant-owned table, and the SECURITY DEFINER lookups made before a tenant is known.

- `tenants` is keyed by its own `id`; whatsapp_credentials, api_keys, usage_daily and audit_logs by `tenant_id`;
  the outbox by `tenant_id` plus the relay's policy. Each policy is forced (the owner too) and fails closed
  when no tenant is set for the transaction.
- The lookups are functions owned by the migrating (owner) role, with `SET search_path = public`, each returning
  only what its caller needs. They read through a SELECT-only policy granted to that owner role alone
  (`TO CURRENT_USER`), which the app role cannot assume. EXECUTE comes from the schema's default privileges
  (owner -> app role), not from PUBLIC.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from eva_common.migrations import outbox_rls, tenant_rls

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("whatsapp_credentials", "api_keys", "usage_daily", "audit_logs")
LOOKUP_TABLES = ("tenants", "whatsapp_credentials", "api_keys")  # read by the definer functions below
OWN_TENANT = "id = NULLIF(current_setting('app.tenant_id', true), '')"
TENANT_COLUMNS = "id text, name text, slug text, status text, plan text, timezone text, locale text, " \
                 "created_at timestamptz"
TENANT_SELECT = "t.id, t.name, t.slug, t.status, t.plan, t.timezone, t.locale, t.created_at"

FUNCTIONS = {
    # slug -> tenant (login with tenantSlug; GetTenantBySlug)
    "tenant_by_slug(text)": f"""
        RETURNS TABLE ({TENANT_COLUMNS}) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT {TENANT_SELECT} FROM tenants t WHERE t.slug = $1
        $$""",
    # the slugs a new tenant's slug could collide with: `base` and `<prefix>...-<n>`
    "tenant_slugs_like(text, text)": """
        RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT t.slug FROM tenants t
            WHERE t.slug = $1 OR (left(t.slug, length($2)) = $2 AND t.slug ~ '-[0-9]+$')
        $$""",
    # the super admins' list: every tenant, newest first, keyset-paginated, optional status and text filters
    "tenants_page(text, text, timestamptz, text, integer)": f"""
        RETURNS TABLE ({TENANT_COLUMNS}) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT {TENANT_SELECT} FROM tenants t
            WHERE ($1 IS NULL OR t.status = $1)
              AND ($2 IS NULL OR strpos(lower(t.name), lower($2)) > 0 OR strpos(t.slug, lower($2)) > 0)
              AND ($3 IS NULL OR (t.created_at, t.id) < ($3, $4))
            ORDER BY t.created_at DESC, t.id DESC
            LIMIT least(greatest($5, 1), 201)
        $$""",
    # phone_number_id -> tenant + its sealed app secret (webhook signatures)
    "phone_number_owner(text)": """
        RETURNS TABLE (tenant_id text, tenant_status text, app_secret_ciphertext text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT c.tenant_id, t.status, c.app_secret_ciphertext
            FROM whatsapp_credentials c JOIN tenants t ON t.id = c.tenant_id
            WHERE c.phone_number_id = $1
        $$""",
    # verify token digest -> the tenants using it (at most two: "more than one" is all the caller needs)
    "verify_token_owners(text)": """
        RETURNS TABLE (tenant_id text) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT c.tenant_id FROM whatsapp_credentials c
            WHERE c.verify_token_digest = $1 ORDER BY c.updated_at DESC LIMIT 2
        $$""",
    # API key digest -> the key's row (never its digest) and its tenant's status
    "api_key_by_digest(text)": """
        RETURNS TABLE (id text, tenant_id text, scopes text[], expires_at timestamptz, revoked_at timestamptz,
                       last_used_at timestamptz, tenant_status text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT k.id, k.tenant_id, k.scopes, k.expires_at, k.revoked_at, k.last_used_at, t.status
            FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
            WHERE k.digest = $1
        $$""",
}


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON tenants USING ({OWN_TENANT}) WITH CHECK ({OWN_TENANT})")
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)
    for statement in outbox_rls("outbox"):
        op.execute(statement)
    for table in LOOKUP_TABLES:
        op.execute(f"CREATE POLICY definer_lookup ON {table} FOR SELECT TO CURRENT_USER USING (true)")
    for signature, body in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    for table in LOOKUP_TABLES:
        op.execute(f"DROP POLICY definer_lookup ON {table}")
    op.execute("DROP POLICY outbox_relay ON outbox")
    for table in ("tenants", *TENANT_TABLES, "outbox"):
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
