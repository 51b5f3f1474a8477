"""Who may call what. Users act by role; API keys (automations, n8n) by scope: `conversations:read` for reads,
`conversations:write` for every change a user of the lowest role allowed may make (status, assignment, tags,
escalations, contacts) — the same routes the gateway opens to keys."""

from __future__ import annotations

from eva_common.auth import Principal
from eva_common.identity import ADMIN_ROLES, ROLES_BY_RANK, SCOPE_CONVERSATIONS_READ, SCOPE_CONVERSATIONS_WRITE

__all__ = ["ADMIN_ROLES", "require_reader", "require_writer"]


def require_reader(principal: Principal) -> None:
    """Any user or service of the tenant; an API key with conversations:read."""
    principal.require_scope(SCOPE_CONVERSATIONS_READ)


def require_writer(principal: Principal, *roles: str) -> None:
    """A user with one of `roles` (attendant and up by default); an API key with conversations:write."""
    if principal.is_api_key:
        principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
        return
    principal.require_role(*(roles or ROLES_BY_RANK))
