"""User bodies: create, change, and pages of users (the user itself is auth.UserOut)."""

from __future__ import annotations

from eva.auth.v1 import auth_pb2
from eva_common.identity import RoleName
from pydantic import Field, model_validator

from gateway.schemas.auth import Email, Password, PersonName, UserOut
from gateway.schemas.base import CamelModel, optional, require_some_field

Role = RoleName


class UserCreateIn(CamelModel):
    name: PersonName
    email: Email
    password: Password
    role: Role = Field(description="Never above the caller's own role")
    tenant_id: str | None = Field(default=None, max_length=128,
                                  description="Super admins only: the tenant to create the user in")

    def to_proto(self) -> auth_pb2.CreateUserRequest:
        return auth_pb2.CreateUserRequest(name=self.name, email=self.email, password=self.password, role=self.role,
                                          tenant_id=self.tenant_id or "")


class UserUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given."""

    name: PersonName | None = None
    email: Email | None = None
    role: Role | None = Field(default=None, description="Never above the caller's own role")
    active: bool | None = Field(default=None, description="false signs the user out everywhere")
    password: Password | None = Field(default=None, description="A new password signs the user out everywhere")

    @model_validator(mode="after")
    def _changes_something(self) -> UserUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self, user_id: str) -> auth_pb2.UpdateUserRequest:
        changes = {name: value for name in ("name", "email", "role", "active", "password")
                   if (value := getattr(self, name)) is not None}
        return auth_pb2.UpdateUserRequest(user_id=user_id, **changes)


class UserPage(CamelModel):
    items: list[UserOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: auth_pb2.ListUsersResponse) -> UserPage:
        return cls(items=[UserOut.from_proto(user) for user in page.items], next_cursor=optional(page.next_cursor))
