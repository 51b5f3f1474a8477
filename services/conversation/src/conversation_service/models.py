"""Tables of the conversation service. Every row carries its tenant; row-level security (see the migration)
backs up the tenant filter every query applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from eva_common.outbox import OutboxEvent
from sqlmodel import Field, SQLModel

from conversation_service.ids import new_id

__all__ = ["Contact", "Conversation", "InboxEntry", "OutboxEvent", "STATUS_OPEN", "STATUS_PENDING", "STATUS_RESOLVED"]

STATUS_OPEN = "open"
STATUS_PENDING = "pending"
STATUS_RESOLVED = "resolved"
ACTIVE_STATUSES = (STATUS_OPEN, STATUS_PENDING)
PRIORITY_NORMAL = "normal"


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
    """A thread with one contact. At most one is open or pending per contact; a resolved one is never reopened:
    the guest's next message starts a new conversation."""

    __tablename__ = "conversations"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'pending', 'resolved')", name="conversations_status_check"),
        sa.Index("conversations_one_active_per_contact", "tenant_id", "contact_id", unique=True,
                 postgresql_where=sa.text("status <> 'resolved'")),
        sa.Index("conversations_tenant_last_message", "tenant_id", sa.text("last_message_at DESC"), sa.text("id DESC")),
        sa.Index("conversations_tenant_status_last_message", "tenant_id", "status", sa.text("last_message_at DESC"),
                 sa.text("id DESC")),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    contact_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("contacts.id"), nullable=False))
    status: str = Field(default=STATUS_OPEN, sa_column=sa.Column(sa.Text, nullable=False, server_default=STATUS_OPEN))
    assigned_to: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    priority: str = Field(
        default=PRIORITY_NORMAL, sa_column=sa.Column(sa.Text, nullable=False, server_default=PRIORITY_NORMAL)
    )
    last_message_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    window_expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    unread_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class InboxEntry(SQLModel, table=True):
    """Events a consumer has applied (inserted in the same transaction as their effects), so a redelivery is a no-op."""

    __tablename__ = "inbox"

    consumer: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    event_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    processed_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
