"""Who may call what. Every check runs before the database is touched; a tenant id is taken from the verified
token, or, for a service principal only, from the request."""

from __future__ import annotations

from eva_common.auth import Principal
from eva_common.errors import PermissionDenied
from eva_common.identity import ADMIN_ROLES, ROLE_SUPER_ADMIN, ROLES_BY_RANK


def _user_only(principal: Principal, what: str) -> None:
    if principal.is_service:
        raise PermissionDenied(f"only a user may {what}", code="USER_ONLY")
    if principal.is_api_key:
        raise PermissionDenied(f"an API key may not {what}", code="API_KEY_NOT_ALLOWED")


def tenant_admin(principal: Principal, what: str) -> str:
    """An admin (or super admin) acting on their own tenant: returns that tenant."""
    _user_only(principal, what)
    principal.require_role(*ADMIN_ROLES)
    return principal.require_tenant()


def super_admin(principal: Principal, what: str) -> None:
    """A platform super admin (a user, never a service or an API key)."""
    _user_only(principal, what)
    principal.require_role(ROLE_SUPER_ADMIN)


def tenant_reader(principal: Principal, requested_tenant_id: str, *, scope: str) -> str:
    """Any user of the tenant, an API key of the tenant with `scope`, or a service naming the tenant."""
    if principal.is_api_key:
        principal.require_scope(scope)
    elif not principal.is_service:
        principal.require_role(*ROLES_BY_RANK)
    return principal.tenant_scope(requested_tenant_id)
