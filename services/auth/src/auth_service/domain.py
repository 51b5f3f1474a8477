"""What the auth use cases take and return, and the rules of a refresh-token rotation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from eva_common.errors import InvalidArgument
from eva_common.identity import ROLES_BY_RANK
from eva_common.paging import DEFAULT_PAGE_SIZE

from auth_service.models import RefreshToken, User

MAX_NAME_LENGTH = 200
TENANT_ACTIVE = "active"
PLATFORM_TENANT_SLUG = "platform"
PLATFORM_TENANT_NAME = "Platform"


def check_role(role: str) -> str:
    if role not in ROLES_BY_RANK:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES_BY_RANK)}", code="INVALID_ROLE")
    return role


@dataclass(frozen=True, slots=True)
class PlanLimits:
    tenant_id: str
    plan: str
    seats: int


@dataclass(frozen=True, slots=True)
class VerifiedApiKey:
    valid: bool
    key_id: str
    tenant_id: str
    scopes: tuple[str, ...]
    tenant_status: str


@dataclass(frozen=True, slots=True)
class ApiKeySession:
    access_token: str
    expires_in: int
    tenant_id: str
    scopes: tuple[str, ...]
    key_id: str

    def __repr__(self) -> str:
        return f"ApiKeySession(key_id={self.key_id!r}, tenant_id={self.tenant_id!r})"


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """An account with the email being logged into (from the auth_login_candidates lookup)."""

    id: str
    tenant_id: str
    password_hash: str
    role: str
    active: bool
    deleted: bool

    def __repr__(self) -> str:
        return f"LoginCandidate(id={self.id!r}, tenant_id={self.tenant_id!r})"


@dataclass(frozen=True, slots=True)
class UserQuery:
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str = ""
    role: str = ""
    q: str = ""
    include_inactive: bool = False
    tenant_id: str = ""


@dataclass(frozen=True, slots=True)
class NewUser:
    name: str
    email: str
    password: str
    role: str = ""
    tenant_id: str = ""

    def __repr__(self) -> str:
        return f"NewUser(email={self.email!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A partial update: None leaves the field as it is."""

    name: str | None = None
    email: str | None = None
    role: str | None = None
    active: bool | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"UserChanges(fields={self.fields()!r})"

    def fields(self) -> list[str]:
        return [name for name in ("name", "email", "role", "active", "password") if getattr(self, name) is not None]


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


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id, tenant_id=user.tenant_id, name=user.name, email=user.email, role=user.role,
        active=user.active, created_at=user.created_at,
    )


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


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[UserView]
    next_cursor: str


class RefreshDecision(enum.Enum):
    ROTATE = "rotate"
    REPLAY = "replay"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    REUSED = "reused"
    EXPIRED = "expired"


def decide_refresh(
    token: RefreshToken | None, *, now: datetime, reuse_grace: timedelta = timedelta(0)
) -> RefreshDecision:
    """What presenting this refresh token means. A spent token presented again within `reuse_grace` of its
    rotation is a concurrent refresh (two tabs at once): REPLAY, answered with the same successor. Later it is a
    theft signal (REUSED): the caller revokes the whole family, so neither the thief nor the victim keeps a
    working token."""
    if token is None:
        return RefreshDecision.UNKNOWN
    if token.revoked_at is not None:
        return RefreshDecision.REVOKED
    if token.used_at is not None:
        return RefreshDecision.REPLAY if now - token.used_at < reuse_grace else RefreshDecision.REUSED
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
