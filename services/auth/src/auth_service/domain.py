"""What the auth use cases take and return, and the rules of a refresh-token rotation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument

from auth_service.models import RefreshToken

MAX_NAME_LENGTH = 200
TENANT_ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """The tenant as the tenant service describes it."""

    id: str
    name: str
    slug: str
    status: str
    plan: str
    timezone: str
    locale: str
    created_at: str


@dataclass(frozen=True, slots=True)
class UserView:
    id: str
    tenant_id: str
    name: str
    email: str
    role: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuthSession:
    access_token: str
    refresh_token: str
    user: UserView
    tenant: TenantInfo
    expires_in: int

    def __repr__(self) -> str:  # tokens never reach a log line through repr()
        return f"AuthSession(user={self.user.id!r}, tenant={self.tenant.id!r})"


@dataclass(frozen=True, slots=True)
class Me:
    user: UserView
    tenant: TenantInfo


class RefreshDecision(enum.Enum):
    ROTATE = "rotate"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    REUSED = "reused"
    EXPIRED = "expired"


def decide_refresh(token: RefreshToken | None, *, now: datetime) -> RefreshDecision:
    """What presenting this refresh token means. A spent token presented again is a theft signal (REUSED):
    the caller revokes the whole family, so neither the thief nor the victim keeps a working token."""
    if token is None:
        return RefreshDecision.UNKNOWN
    if token.revoked_at is not None:
        return RefreshDecision.REVOKED
    if token.used_at is not None:
        return RefreshDecision.REUSED
    if token.expires_at <= now:
        return RefreshDecision.EXPIRED
    return RefreshDecision.ROTATE


def clean_name(value: str, *, field: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidArgument(f"{field} is required", code="VALIDATION_FAILED")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_NAME_LENGTH} characters", code="VALIDATION_FAILED")
    return cleaned
