"""inbox lists whose cost does not grow with the table: a contact search that can use its indexes, and tag pages
read in the inbox's order

Search: under forced row-level security PostgreSQL may not use an index for a condition whose operator is not
leakproof (ILIKE is not), so `name ILIKE '%anna%'` scanned every contact of the tenant. `contact_ids_matching`
runs the match with the owner's rights (through a SELECT-only `definer_lookup` policy on contacts, which the app
role cannot assume), bound to the transaction's own tenant (`app.tenant_id`, never an argument), and returns at most
`max_rows` ids. The trigram indexes gain tenant_id as their first column (btree_gin, a trusted extension), so the
match is narrowed to the tenant inside the index instead of rechecking every tenant's candidates.

Tags: conversation_tags carries its conversation's last_message_at (set on insert, kept by a trigger on
conversations), indexed (tenant_id, tag_id, last_message_at DESC, conversation_id DESC): a tag's page is read from
that index however rare the tag is, instead of walking the whole inbox looking for tagged conversations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTACT_SEARCH = "contact_ids_matching(text, text, integer)"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.drop_index("contacts_name_trgm", table_name="contacts")
    op.drop_index("contacts_phone_trgm", table_name="contacts")
    op.create_index("contacts_tenant_name_trgm", "contacts", ["tenant_id", sa.text("name gin_trgm_ops")],
                    postgresql_using="gin")
    op.create_index("contacts_tenant_phone_trgm", "contacts", ["tenant_id", sa.text("phone gin_trgm_ops")],
                    postgresql_using="gin")
    op.execute("CREATE POLICY definer_lookup ON contacts FOR SELECT TO CURRENT_USER USING (true)")
    # $1: pattern for the name, $2: pattern for the phone (both ILIKE patterns), $3: at most this many ids
    op.execute(f"""
        CREATE FUNCTION {CONTACT_SEARCH} RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT c.id FROM contacts c
            WHERE c.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')
              AND (c.name ILIKE $1 OR c.phone ILIKE $2)
            LIMIT greatest($3, 0)
        $$""")
    op.execute(f"REVOKE ALL ON FUNCTION {CONTACT_SEARCH} FROM PUBLIC")

    op.add_column("conversation_tags", sa.Column("last_message_at", sa.DateTime(timezone=True)))
    # The backfill spans every tenant: row-level security binds this (owner) role too while it is forced, so it is
    # lifted for this one statement, inside the migration's transaction.
    for table in ("conversations", "conversation_tags"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE conversation_tags t SET last_message_at = c.last_message_at "
               "FROM conversations c WHERE c.id = t.conversation_id")
    for table in ("conversations", "conversation_tags"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.alter_column("conversation_tags", "last_message_at", nullable=False)
    op.drop_index("conversation_tags_tenant_tag", table_name="conversation_tags")
    op.create_index("conversation_tags_tenant_tag_last_message", "conversation_tags",
                    ["tenant_id", "tag_id", sa.text("last_message_at DESC"), sa.text("conversation_id DESC")])
    # Both triggers run with the caller's rights, under its tenant's row-level security.
    op.execute("""
        CREATE FUNCTION conversation_tags_take_activity() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            SELECT c.last_message_at INTO NEW.last_message_at FROM conversations c WHERE c.id = NEW.conversation_id;
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE TRIGGER conversation_tags_take_activity BEFORE INSERT ON conversation_tags
        FOR EACH ROW EXECUTE FUNCTION conversation_tags_take_activity()""")
    op.execute("""
        CREATE FUNCTION conversations_share_activity() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE conversation_tags SET last_message_at = NEW.last_message_at WHERE conversation_id = NEW.id;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER conversations_share_activity AFTER UPDATE OF last_message_at ON conversations
        FOR EACH ROW WHEN (OLD.last_message_at IS DISTINCT FROM NEW.last_message_at)
        EXECUTE FUNCTION conversations_share_activity()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER conversations_share_activity ON conversations")
    op.execute("DROP FUNCTION conversations_share_activity()")
    op.execute("DROP TRIGGER conversation_tags_take_activity ON conversation_tags")
    op.execute("DROP FUNCTION conversation_tags_take_activity()")
    op.drop_index("conversation_tags_tenant_tag_last_message", table_name="conversation_tags")
    op.create_index("conversation_tags_tenant_tag", "conversation_tags", ["tenant_id", "tag_id", "conversation_id"])
    op.drop_column("conversation_tags", "last_message_at")
    op.execute(f"DROP FUNCTION {CONTACT_SEARCH}")
    op.execute("DROP POLICY definer_lookup ON contacts")
    op.drop_index("contacts_tenant_phone_trgm", table_name="contacts")
    op.drop_index("contacts_tenant_name_trgm", table_name="contacts")
    op.create_index("contacts_name_trgm", "contacts", [sa.text("name gin_trgm_ops")], postgresql_using="gin")
    op.create_index("contacts_phone_trgm", "contacts", [sa.text("phone gin_trgm_ops")], postgresql_using="gin")
