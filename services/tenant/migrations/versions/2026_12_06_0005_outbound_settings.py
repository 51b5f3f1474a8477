"""Outbound settings: the tenant's read-receipt policy, the number's coexistence, throughput and health, and
delivered messages counted once per message.

- `tenants.read_receipts`: `on_read` (Meta's read receipts and typing indicators when an attendant reads; the
  default) or `never`.
- `whatsapp_credentials`: `coexistence` (the number is also used in the WhatsApp Business app), `throughput_mps`
  (0: the default for the number's kind, 80 or 20 with coexistence; else 1..1000), and `health_*` (messaging reports
  Meta refusing the access token, e.g. code 190; a new access token makes it healthy again).
- `usage_daily.direction` may also be `delivered`: an outbound message counted once more, in its pricing category,
  on the day Meta first reported it delivered (or read). `usage_delivered` remembers which messages were counted so
  a READ after DELIVERED, or a redelivered status, never counts twice. Row-level security as every tenant table.
- `tenant_by_slug` and `tenants_page` also return `read_receipts` (a function's result type cannot be altered in
  place: they are dropped and created again; EXECUTE comes back from the schema's default privileges).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from eva_common.migrations import tenant_rls

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES = "('service', 'utility', 'marketing', 'authentication')"
_COLUMNS = "id text, name text, slug text, status text, plan text, timezone text, locale text, created_at timestamptz"
_SELECT = "t.id, t.name, t.slug, t.status, t.plan, t.timezone, t.locale, t.created_at"


def _functions(columns: str, select: str) -> dict[str, str]:
    """The two lookups returning tenants (as revision 0003 defined them, with the given columns)."""
    return {
        "tenant_by_slug(text)": f"""
            RETURNS TABLE ({columns}) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
                SELECT {select} FROM tenants t WHERE t.slug = $1
            $$""",
        "tenants_page(text, text, timestamptz, text, integer)": f"""
            RETURNS TABLE ({columns}) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
                SELECT {select} FROM tenants t
                WHERE ($1 IS NULL OR t.status = $1)
                  AND ($2 IS NULL OR strpos(lower(t.name), lower($2)) > 0 OR strpos(t.slug, lower($2)) > 0)
                  AND ($3 IS NULL OR (t.created_at, t.id) < ($3, $4))
                ORDER BY t.created_at DESC, t.id DESC
                LIMIT least(greatest($5, 1), 201)
            $$""",
    }


def _replace_functions(functions: dict[str, str]) -> None:
    for signature, body in functions.items():
        op.execute(f"DROP FUNCTION {signature}")
        op.execute(f"CREATE FUNCTION {signature} {body}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def upgrade() -> None:
    op.add_column("tenants", sa.Column("read_receipts", sa.Text, nullable=False, server_default="on_read"))
    op.create_check_constraint("ck_tenants_read_receipts", "tenants", "read_receipts IN ('on_read', 'never')")

    op.add_column("whatsapp_credentials",
                  sa.Column("coexistence", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("whatsapp_credentials",
                  sa.Column("throughput_mps", sa.Integer, nullable=False, server_default="0"))
    op.add_column("whatsapp_credentials",
                  sa.Column("health_status", sa.Text, nullable=False, server_default="healthy"))
    op.add_column("whatsapp_credentials", sa.Column("health_code", sa.Integer, nullable=True))
    op.add_column("whatsapp_credentials", sa.Column("health_detail", sa.Text, nullable=True))
    op.add_column("whatsapp_credentials", sa.Column("health_since", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("ck_whatsapp_credentials_throughput_mps", "whatsapp_credentials",
                               "throughput_mps BETWEEN 0 AND 1000")
    op.create_check_constraint("ck_whatsapp_credentials_health_status", "whatsapp_credentials",
                               "health_status IN ('healthy', 'unhealthy')")

    op.drop_constraint("ck_usage_daily_direction", "usage_daily", type_="check")
    op.create_check_constraint("ck_usage_daily_direction", "usage_daily",
                               "direction IN ('inbound', 'outbound', 'delivered')")

    op.create_table(
        "usage_delivered",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"category IN {CATEGORIES}", name="ck_usage_delivered_category"),
    )
    for statement in tenant_rls("usage_delivered"):
        op.execute(statement)

    _replace_functions(_functions(f"{_COLUMNS}, read_receipts text", f"{_SELECT}, t.read_receipts"))


def downgrade() -> None:
    _replace_functions(_functions(_COLUMNS, _SELECT))
    op.drop_table("usage_delivered")
    op.execute("ALTER TABLE usage_daily NO FORCE ROW LEVEL SECURITY")  # the owner may then see every tenant's rows
    op.execute("DELETE FROM usage_daily WHERE direction = 'delivered'")
    op.execute("ALTER TABLE usage_daily FORCE ROW LEVEL SECURITY")
    op.drop_constraint("ck_usage_daily_direction", "usage_daily", type_="check")
    op.create_check_constraint("ck_usage_daily_direction", "usage_daily", "direction IN ('inbound', 'outbound')")
    op.drop_constraint("ck_whatsapp_credentials_health_status", "whatsapp_credentials", type_="check")
    op.drop_constraint("ck_whatsapp_credentials_throughput_mps", "whatsapp_credentials", type_="check")
    for column in ("health_since", "health_detail", "health_code", "health_status", "throughput_mps",
                   "coexistence"):
        op.drop_column("whatsapp_credentials", column)
    op.drop_constraint("ck_tenants_read_receipts", "tenants", type_="check")
    op.drop_column("tenants", "read_receipts")
