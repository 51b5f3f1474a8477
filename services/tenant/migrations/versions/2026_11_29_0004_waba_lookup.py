"""waba_owners(text): WhatsApp Business Account id -> the tenants claiming it (SECURITY DEFINER lookup)

Account-level webhook changes (e.g. `message_template_status_update`) carry no phone number id, only the entry's
WABA id. A WABA may hold several numbers of one tenant; when two tenants claim one WABA the caller refuses to route
(it only needs to know "more than one", so at most two distinct tenants are returned). Like the lookups of 0003
the function is owned by the migrating role, reads through its `definer_lookup` policy and is not EXECUTE-able by
PUBLIC (the app role gets EXECUTE from the schema's default privileges).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "waba_owners(text)"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION {SIGNATURE}
        RETURNS TABLE (tenant_id text, tenant_status text, app_secret_ciphertext text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT DISTINCT ON (c.tenant_id) c.tenant_id, t.status, c.app_secret_ciphertext
            FROM whatsapp_credentials c JOIN tenants t ON t.id = c.tenant_id
            WHERE c.waba_id = $1
            ORDER BY c.tenant_id, c.updated_at DESC
            LIMIT 2
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute("CREATE INDEX IF NOT EXISTS ix_whatsapp_credentials_waba_id ON whatsapp_credentials (waba_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_whatsapp_credentials_waba_id")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
