"""Tables of the auth database (eva_auth)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from eva_common.identity import ROLES_BY_RANK
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

LIVE_USER = "deleted_at IS NULL"


class AuthModel(SQLModel, registry=registry()):
    """Base of this service's tables: a metadata of their own, so no other service's tables mix in."""


def _timestamp(*, nullable: bool = False) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(sa.DateTime(timezone=True), nullable=True)
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class User(AuthModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        # a deleted user frees its email: unique among the tenant's live users only
        sa.Index("uq_users_tenant_email_live", "tenant_id", "email", unique=True,
                 postgresql_where=sa.text(LIVE_USER)),
        sa.Index("ix_users_tenant_created", "tenant_id", "created_at", "id"),
        sa.CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES_BY_RANK)})", name="ck_users_role"),
        sa.CheckConstraint("email = lower(email)", name="ck_users_email_lowercase"),
    )

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    email: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    password_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    role: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    active: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()))
    password_changed_at: datetime = Field(sa_column=_timestamp())
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))

    def __repr__(self) -> str:  # the password hash stays out of logs
        return f"User(id={self.id!r}, tenant_id={self.tenant_id!r}, role={self.role!r})"


class RefreshToken(AuthModel, table=True):
    """One issued refresh token. A login starts a family; each refresh spends one token and adds the next."""

    __tablename__ = "refresh_tokens"

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    family_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    user_id: str = Field(
        sa_column=sa.Column(sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    tenant_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False, index=True))
    token_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    issued_at: datetime = Field(sa_column=_timestamp())
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # The session this token's rotation handed out, sealed under the token itself (`tokens.seal_successor`): the
    # same token presented again within the reuse grace gets the same answer. Cleared once the grace is over.
    successor_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))

    def __repr__(self) -> str:
        return f"RefreshToken(id={self.id!r}, family_id={self.family_id!r})"


metadata = AuthModel.metadata
