"""/api/users: the users of the caller's tenant (AuthService). Attendants may list and read; admins (and super
admins) create, change and delete, never granting a role above their own."""

from __future__ import annotations

from typing import Annotated

from eva.auth.v1 import auth_pb2
from eva_common.auth import Principal
from eva_common.errors import NotFound
from eva_common.identity import ADMIN_ROLES, ROLE_SUPER_ADMIN
from fastapi import APIRouter, Query, status

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, PageLimit, SearchText, UserId
from gateway.schemas.auth import UserOut
from gateway.schemas.base import DEFAULT_PAGE_SIZE
from gateway.schemas.users import Role, UserCreateIn, UserPage, UserUpdateIn

router = APIRouter(prefix="/api/users", tags=["users"])


def _visible(principal: Principal, user: auth_pb2.User) -> UserOut:
    """Defence in depth: a user of another tenant is not found, whatever an upstream returned (super admins
    manage every tenant)."""
    if principal.role != ROLE_SUPER_ADMIN and user.tenant_id != principal.tenant_id:
        raise NotFound("user not found", code="NOT_FOUND")
    return UserOut.from_proto(user)


@router.get("", summary="Users of the caller's tenant, a page at a time", responses=api_problems(400, 409))
async def list_users(
    principal: PrincipalDep,
    clients: ClientsDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    role: Annotated[Role | None, Query(description="Only users with this role")] = None,
    q: SearchText = None,
    include_inactive: Annotated[bool, Query(alias="includeInactive", description="Deactivated users too")] = False,
    tenant_id: Annotated[str | None, Query(alias="tenantId", max_length=128,
                                           description="Super admins only: another tenant's users")] = None,
) -> UserPage:
    if tenant_id:
        principal.require_role(ROLE_SUPER_ADMIN)
    page: auth_pb2.ListUsersResponse = await clients.call(
        clients.auth.ListUsers,
        auth_pb2.ListUsersRequest(limit=limit, cursor=cursor or "", role=role or "", q=q or "",
                                  include_inactive=include_inactive, tenant_id=tenant_id or ""),
        token=principal.token,
    )
    return UserPage.from_proto(page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admins; never with a role above the caller's)",
    responses=api_problems(400, 409, 413, 422),
)
async def create_user(body: UserCreateIn, principal: PrincipalDep, clients: ClientsDep) -> UserOut:
    principal.require_role(*ADMIN_ROLES)
    if body.tenant_id:
        principal.require_role(ROLE_SUPER_ADMIN)
    user: auth_pb2.User = await clients.call(clients.auth.CreateUser, body.to_proto(), token=principal.token)
    return UserOut.from_proto(user) if body.tenant_id else _visible(principal, user)


@router.get("/{user_id}", summary="One user of the caller's tenant", responses=api_problems(400, 404, 409))
async def get_user(user_id: UserId, principal: PrincipalDep, clients: ClientsDep) -> UserOut:
    user: auth_pb2.User = await clients.call(
        clients.auth.GetUser, auth_pb2.GetUserRequest(user_id=user_id), token=principal.token
    )
    return _visible(principal, user)


@router.patch(
    "/{user_id}",
    summary="Change a user (admins); deactivating or a new password signs them out everywhere",
    responses=api_problems(400, 404, 409, 413, 422),
)
async def update_user(user_id: UserId, body: UserUpdateIn, principal: PrincipalDep, clients: ClientsDep) -> UserOut:
    principal.require_role(*ADMIN_ROLES)
    user: auth_pb2.User = await clients.call(clients.auth.UpdateUser, body.to_proto(user_id), token=principal.token)
    return _visible(principal, user)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user (admins; never the tenant's last admin)",
    responses=api_problems(400, 404, 409, 422),
)
async def delete_user(user_id: UserId, principal: PrincipalDep, clients: ClientsDep) -> None:
    principal.require_role(*ADMIN_ROLES)
    await clients.call(clients.auth.DeleteUser, auth_pb2.DeleteUserRequest(user_id=user_id), token=principal.token)
