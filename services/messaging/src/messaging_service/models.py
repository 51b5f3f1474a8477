"""Tables of the messaging service. Every row carries its tenant; row-level security (see the migration) backs up
the tenant filter every query applies. The outbox table comes from eva_common.outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eva_common.ids import new_id
from eva_common.outbox import OutboxEvent
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

__all__ = ["INBOUND", "OUTBOUND", "IdempotencyKey", "MediaJob", "MediaUpload", "Message", "MessageStatus",
           "OutboundJob", "OutboxEvent", "ParkedStatus", "Template", "TemplateSync"]

INBOUND = "inbound"
OUTBOUND = "outbound"


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(sa.DateTime(timezone=True), nullable=True)
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _json(*, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(JSONB(none_as_null=True), nullable=nullable)


class Message(SQLModel, table=True):
    """One WhatsApp message, stored once per (tenant, wamid). Ordered per conversation by sent_at, then id."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "wamid", name="messages_tenant_wamid_key"),
        sa.Index("messages_conversation_order", "tenant_id", "conversation_id", "sent_at", "id"),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="messages_direction_check"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    conversation_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, nullable=False))
    contact_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, nullable=False))
    wamid: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    direction: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # The type's own object as Meta shaped it (text: {"body": …}).
    content: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))
    context: dict[str, Any] | None = Field(default=None, sa_column=_json())
    referral: dict[str, Any] | None = Field(default=None, sa_column=_json())
    error: list[dict[str, Any]] | None = Field(default=None, sa_column=_json())
    # Meta's whole message object, so nothing is lost while later issues type more of it.
    raw: dict[str, Any] | None = Field(default=None, sa_column=_json())
    phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    sent_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    # Media messages: {status: pending|ready|failed, mediaId, mimeType, sha256, size, filename, caption, error}.
    media: dict[str, Any] | None = Field(default=None, sa_column=_json())
    # Meta's pricing category, from the first status that carried one (for usage).
    pricing_category: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Guests' current reactions: [{contactId, emoji, reactionWamid, reactedAt}], one per contact.
    reactions: list[dict[str, Any]] | None = Field(default=None, sa_column=_json())
    # Outbound: who sent it ({kind: user|api_key|automation|business_app, id, name}).
    sender: dict[str, Any] | None = Field(default=None, sa_column=_json())
    # whatsapp (a guest), eva (sent through Eva), business_app (a coexistence echo).
    source: str = Field(default="whatsapp", sa_column=sa.Column(sa.Text, nullable=False, server_default="whatsapp"))
    # Outbound: how many times the sender called Meta for it.
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    # Inbound: when an attendant read it.
    read_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # Outbound templates: the template's category (utility, marketing, authentication).
    category: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class MessageStatus(SQLModel, table=True):
    """The history of delivery statuses Meta reported for a stored message (one row per message and status)."""

    __tablename__ = "message_statuses"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "status", name="message_statuses_message_status_key"),
        sa.Index("message_statuses_tenant_wamid", "tenant_id", "wamid"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("messages.id"), nullable=False))
    wamid: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    recipient_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=_json())
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class ParkedStatus(SQLModel, table=True):
    """A status for a wamid not stored (yet): kept, to be applied when the message appears, or deleted once it has
    been parked longer than Meta retries (`created_at` is when it was parked; see parked_expiry.py)."""

    __tablename__ = "parked_statuses"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "wamid", "status", name="parked_statuses_key"),
        sa.Index("parked_statuses_created_at", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    wamid: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    recipient_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=_json())
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_json(nullable=False))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class MediaJob(SQLModel, table=True):
    """The download of one message's media: retried with backoff until it is stored or gives up (`failed`)."""

    __tablename__ = "media_jobs"
    __table_args__ = (
        sa.UniqueConstraint("message_id", name="media_jobs_message_key"),
        sa.CheckConstraint("state IN ('pending', 'done', 'failed')", name="media_jobs_state_check"),
        sa.Index("media_jobs_due", "next_attempt_at", postgresql_where=sa.text("state = 'pending'")),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("messages.id"), nullable=False))
    media_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    state: str = Field(default="pending", sa_column=sa.Column(sa.Text, nullable=False, server_default="pending"))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class OutboundJob(SQLModel, table=True):
    """The delivery of one outbound message to Meta: leased by a sender (claim_outbound_jobs), retried with backoff,
    `uncertain` when a call's answer was lost (the next attempt first looks for the statuses of that send)."""

    __tablename__ = "outbound_jobs"
    __table_args__ = (
        sa.UniqueConstraint("message_id", name="outbound_jobs_message_key"),
        sa.CheckConstraint("state IN ('pending', 'sending', 'done', 'failed')", name="outbound_jobs_state_check"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("messages.id"), nullable=False))
    conversation_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, nullable=False))
    # 0 attendant, 1 automation, 2 bulk: lower leaves first.
    priority: int = Field(default=0, sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="0"))
    state: str = Field(default="pending", sa_column=sa.Column(sa.Text, nullable=False, server_default="pending"))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    uncertain: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    next_attempt_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    lease_until: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    last_error: dict[str, Any] | None = Field(default=None, sa_column=_json())
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key a sender used: the same key with the same body within 24 hours answers the first message."""

    __tablename__ = "idempotency_keys"

    tenant_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    request_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, sa.ForeignKey("messages.id"), nullable=False))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class MediaUpload(SQLModel, table=True):
    """A file stored for sending (POST /api/media); uploaded to Meta when first sent (Meta keeps it 30 days)."""

    __tablename__ = "media_uploads"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    mime_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    filename: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    meta_media_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    meta_phone_number_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    meta_uploaded_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Template(SQLModel, table=True):
    """A message template of the tenant's WhatsApp Business Account, as Meta last reported it."""

    __tablename__ = "templates"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name", "language", name="templates_tenant_name_language_key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    waba_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    meta_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    language: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    category: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    quality: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    parameter_format: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    components: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json(nullable=False))
    rejected_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class TemplateSync(SQLModel, table=True):
    """When a tenant's templates were last synced from the Graph API, and when they are due again."""

    __tablename__ = "template_syncs"

    tenant_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    waba_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    synced_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    next_sync_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
