"""Tables of the conversation service. Every row carries its tenant; row-level security (see the migration)
backs up the tenant filter every query applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from eva_common.ids import new_id
from eva_common.outbox import OutboxEvent
from sqlmodel import Field, SQLModel

__all__ = [
    "Contact",
    "Conversation",
    "ConversationTag",
    "Escalation",
    "InboxEntry",
    "OutboxEvent",
    "STATUS_OPEN",
    "STATUS_PENDING",
    "STATUS_RESOLVED",
    "Tag",
]

STATUS_OPEN = "open"
STATUS_PENDING = "pending"
STATUS_RESOLVED = "resolved"
ACTIVE_STATUSES = (STATUS_OPEN, STATUS_PENDING)
STATUSES = (STATUS_OPEN, STATUS_PENDING, STATUS_RESOLVED)
PRIORITY_NORMAL = "normal"
PRIORITIES = ("low", PRIORITY_NORMAL, "high", "urgent")
ESCALATION_OPEN = "open"
ESCALATION_ACKNOWLEDGED = "acknowledged"
ESCALATION_RESOLVED = "resolved"
ESCALATION_STATUSES = (ESCALATION_OPEN, ESCALATION_ACKNOWLEDGED, ESCALATION_RESOLVED)


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(sa.DateTime(timezone=True), nullable=True)
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class Contact(SQLModel, table=True):
    """A guest of one tenant, known by Meta's phone-based wa_id and/or its business-scoped user_id (BSUID)."""

    __tablename__ = "contacts"
    __table_args__ = (
        sa.Index("contacts_tenant_wa_id_key", "tenant_id", "wa_id", unique=True,
                 postgresql_where=sa.text("wa_id IS NOT NULL")),
        sa.Index("contacts_tenant_user_id_key", "tenant_id", "user_id", unique=True,
                 postgresql_where=sa.text("user_id IS NOT NULL")),
        sa.Index("contacts_tenant_id_desc", "tenant_id", sa.text("id DESC")),
        sa.Index("contacts_tenant_name_trgm", "tenant_id", sa.text("name gin_trgm_ops"), postgresql_using="gin"),
        sa.Index("contacts_tenant_phone_trgm", "tenant_id", sa.text("phone gin_trgm_ops"), postgresql_using="gin"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    wa_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    user_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    phone: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Conversation(SQLModel, table=True):
    """A thread with one contact. At most one is open or pending per contact; the guest's next message reopens the
    latest resolved one (same id, same history)."""

    __tablename__ = "conversations"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'pending', 'resolved')", name="conversations_status_check"),
        sa.Index("conversations_one_active_per_contact", "tenant_id", "contact_id", unique=True,
                 postgresql_where=sa.text("status <> 'resolved'")),
        sa.Index("conversations_tenant_last_message", "tenant_id", sa.text("last_message_at DESC"), sa.text("id DESC")),
        sa.Index("conversations_tenant_status_last_message", "tenant_id", "status", sa.text("last_message_at DESC"),
                 sa.text("id DESC")),
        sa.Index("conversations_tenant_assignee_last_message", "tenant_id", "assigned_to",
                 sa.text("last_message_at DESC"), sa.text("id DESC")),
        sa.Index("conversations_tenant_unassigned_last_message", "tenant_id", sa.text("last_message_at DESC"),
                 sa.text("id DESC"), postgresql_where=sa.text("assigned_to IS NULL")),
        sa.Index("conversations_tenant_updated", "tenant_id", "updated_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    contact_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("contacts.id"), nullable=False))
    status: str = Field(default=STATUS_OPEN, sa_column=sa.Column(sa.Text, nullable=False, server_default=STATUS_OPEN))
    assigned_to: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    priority: str = Field(
        default=PRIORITY_NORMAL, sa_column=sa.Column(sa.Text, nullable=False, server_default=PRIORITY_NORMAL)
    )
    # The sort key of the inbox (last activity); never NULL (a new conversation starts at its first message).
    last_message_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    last_message_preview: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    last_inbound_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    window_expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    unread_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Tag(SQLModel, table=True):
    """A label of one tenant; its name is unique per tenant case-insensitively."""

    __tablename__ = "tags"
    __table_args__ = (
        sa.Index("tags_tenant_name_key", "tenant_id", sa.text("lower(name)"), unique=True),
        sa.CheckConstraint("color ~ '^#[0-9a-f]{6}$'", name="tags_color_check"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    color: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class ConversationTag(SQLModel, table=True):
    """A tag on a conversation. `last_message_at` is the conversation's own, copied on insert and kept equal by a
    trigger, so a tag's inbox page is read from one index in the inbox's order."""

    __tablename__ = "conversation_tags"
    __table_args__ = (sa.Index("conversation_tags_tenant_tag_last_message", "tenant_id", "tag_id",
                               sa.text("last_message_at DESC"), sa.text("conversation_id DESC")),)

    conversation_id: uuid.UUID = Field(sa_column=sa.Column(
        sa.Uuid, sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True))
    tag_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("tags.id", ondelete="CASCADE"),
                                                  primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # Filled by the database (trigger conversation_tags_take_activity), never by the application.
    last_message_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True),
                                                                              nullable=False))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Escalation(SQLModel, table=True):
    """A request for help on a conversation: open -> acknowledged -> resolved (or open -> resolved)."""

    __tablename__ = "escalations"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="escalations_status_check"),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="escalations_priority_check"),
        sa.Index("escalations_tenant_id_desc", "tenant_id", sa.text("id DESC")),
        sa.Index("escalations_tenant_status_id_desc", "tenant_id", "status", sa.text("id DESC")),
        sa.Index("escalations_tenant_conversation_id_desc", "tenant_id", "conversation_id", sa.text("id DESC")),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    conversation_id: uuid.UUID = Field(sa_column=sa.Column(
        sa.Uuid, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    priority: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(default=ESCALATION_OPEN, sa_column=sa.Column(sa.Text, nullable=False))
    raised_by: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    acknowledged_by: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    resolved_by: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    acknowledged_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class InboxEntry(SQLModel, table=True):
    """Events a consumer has applied (inserted in the same transaction as their effects), so a redelivery is a no-op."""

    __tablename__ = "inbox"

    consumer: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    event_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    processed_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
