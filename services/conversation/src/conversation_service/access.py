"""Who may call what. Users act by role; API keys only where keys may call (reads, status updates), by scope."""

from __future__ import annotations

from eva_common.auth import Principal
from eva_common.errors import PermissionDenied
from eva_common.identity import ADMIN_ROLES, ROLES_BY_RANK, SCOPE_CONVERSATIONS_READ, SCOPE_CONVERSATIONS_WRITE

__all__ = ["ADMIN_ROLES", "require_reader", "require_status_writer", "require_user"]


def require_reader(principal: Principal) -> None:
    """Any user or service of the tenant; an API key with conversations:read."""
    principal.require_scope(SCOPE_CONVERSATIONS_READ)


def require_status_writer(principal: Principal) -> None:
    """Attendants and admins; an API key with conversations:write."""
    if principal.is_api_key:
        principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
        return
    principal.require_role(*ROLES_BY_RANK)


def require_user(principal: Principal, *roles: str) -> None:
    """A user with one of `roles` (attendant and up by default); API keys may not call this."""
    if principal.is_api_key:
        raise PermissionDenied("API keys cannot do this", code="API_KEY_NOT_ALLOWED")
    principal.require_role(*(roles or ROLES_BY_RANK))
