"""Auth bodies: register, login, refresh, logout, the session and the caller."""

from __future__ import annotations

import re
from typing import Annotated

from eva.auth.v1 import auth_pb2
from eva_common.identity import normalize_email
from pydantic import AfterValidator, Field, StringConstraints

from gateway.schemas.base import CamelModel, optional
from gateway.schemas.tenant import TenantOut

# A practical address syntax check (RFC 5321 lengths, dot-atom local part, a dotted domain). Deliverability is not
# checked, and private domains such as `eva.local` are accepted.
_EMAIL = re.compile(
    r"^(?=.{3,254}$)(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def _email(value: str) -> str:
    """A well-formed address, normalised the one way accounts are (eva_common.identity.normalize_email)."""
    if not _EMAIL.match(value):
        raise ValueError("value is not a valid email address")
    return normalize_email(value)


Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email),
    Field(examples=["reception@hotel.example"], json_schema_extra={"format": "email"}),
]
RefreshToken = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class RegisterIn(CamelModel):
    tenant_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)]
    name: PersonName
    email: Email
    password: Password

    def to_proto(self) -> auth_pb2.RegisterRequest:
        return auth_pb2.RegisterRequest(
            tenant_name=self.tenant_name, name=self.name, email=str(self.email), password=self.password
        )


class LoginIn(CamelModel):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    tenant_slug: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)] | None = None

    def to_proto(self) -> auth_pb2.LoginRequest:
        return auth_pb2.LoginRequest(email=str(self.email), password=self.password, tenant_slug=self.tenant_slug or "")


class RefreshIn(CamelModel):
    refresh_token: RefreshToken


class LogoutIn(CamelModel):
    refresh_token: RefreshToken


class UserOut(CamelModel):
    id: str
    tenant_id: str
    name: str
    email: str
    role: str
    active: bool
    created_at: str | None

    @classmethod
    def from_proto(cls, user: auth_pb2.User) -> UserOut:
        return cls(
            id=user.id, tenant_id=user.tenant_id, name=user.name, email=user.email, role=user.role,
            active=user.active, created_at=optional(user.created_at),
        )


class AuthSessionOut(CamelModel):
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="Seconds until the access token expires")
    user: UserOut
    tenant: TenantOut

    @classmethod
    def from_proto(cls, session: auth_pb2.AuthSession) -> AuthSessionOut:
        return cls(
            access_token=session.access_token, refresh_token=session.refresh_token, expires_in=session.expires_in,
            user=UserOut.from_proto(session.user), tenant=TenantOut.from_proto(session.tenant),
        )


class MeOut(CamelModel):
    user: UserOut
    tenant: TenantOut

    @classmethod
    def from_proto(cls, me: auth_pb2.Me) -> MeOut:
        return cls(user=UserOut.from_proto(me.user), tenant=TenantOut.from_proto(me.tenant))
