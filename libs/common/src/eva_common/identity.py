"""Who a principal can be, defined once for every service and the gateway: the user roles (ordered, with their
rank), the API-key scopes, and how an e-mail address is normalised into an account identity.

The role and scope names are `Literal` types, so request schemas can use them directly (an inline enum in OpenAPI)
and mypy checks every constant; the tuples and sets below are derived from them, never spelled again.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# ------------------------------------------------------------------ roles

# User roles, lowest first: an attendant < an admin (of one tenant) < a super admin (of the platform tenant).
RoleName = Literal["attendant", "admin", "super_admin"]
ROLES_BY_RANK: Final[tuple[RoleName, ...]] = get_args(RoleName)
ROLE_ATTENDANT: Final[RoleName] = "attendant"
ROLE_ADMIN: Final[RoleName] = "admin"
ROLE_SUPER_ADMIN: Final[RoleName] = "super_admin"
# Who administers a tenant (its users, settings, keys, audit log; the last-admin rule counts these).
ADMIN_ROLES: Final[frozenset[RoleName]] = frozenset({ROLE_ADMIN, ROLE_SUPER_ADMIN})
# Roles of tokens that are not users: they rank below every user role.
ROLE_SERVICE: Final = "service"
ROLE_API_KEY: Final = "api_key"


def is_user_role(role: str) -> bool:
    return role in ROLES_BY_RANK


def role_rank(role: str) -> int:
    """attendant 0 < admin 1 < super_admin 2; any other role (service, api_key, unknown) is -1."""
    return ROLES_BY_RANK.index(role) if is_user_role(role) else -1


# ------------------------------------------------------------------ API-key scopes

# In the order they are listed and stored (a key's scopes are kept in this order).
ScopeName = Literal["conversations:read", "conversations:write", "messages:read", "messages:send", "usage:read"]
API_KEY_SCOPES: Final[tuple[ScopeName, ...]] = get_args(ScopeName)
SCOPE_CONVERSATIONS_READ: Final[ScopeName] = "conversations:read"
SCOPE_CONVERSATIONS_WRITE: Final[ScopeName] = "conversations:write"
SCOPE_MESSAGES_READ: Final[ScopeName] = "messages:read"
SCOPE_MESSAGES_SEND: Final[ScopeName] = "messages:send"
SCOPE_USAGE_READ: Final[ScopeName] = "usage:read"
ALL_SCOPES: Final[frozenset[ScopeName]] = frozenset(API_KEY_SCOPES)


# ------------------------------------------------------------------ e-mail


def normalize_email(email: str) -> str:
    """The account identity of an address: trimmed and lowercased (how it is stored and looked up)."""
    return email.strip().lower()
