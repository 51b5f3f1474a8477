"""API key bodies: the key is returned once, at creation; lists never carry it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from eva.tenant.v1 import tenant_pb2
from eva_common.identity import API_KEY_SCOPES, ScopeName
from pydantic import AwareDatetime, Field, StringConstraints, field_validator

from gateway.schemas.base import CamelModel, optional, rfc3339

ApiKeyScope = ScopeName


class ApiKeyCreateIn(CamelModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    scopes: list[ApiKeyScope] = Field(min_length=1, max_length=len(API_KEY_SCOPES), description="What the key may do")
    expires_at: AwareDatetime | None = Field(default=None, description="RFC 3339, in the future; none: no expiry")

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[ApiKeyScope]) -> list[ApiKeyScope]:
        return list(dict.fromkeys(scopes))

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, expires_at: datetime | None) -> datetime | None:
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return expires_at

    def to_proto(self) -> tenant_pb2.CreateApiKeyRequest:
        return tenant_pb2.CreateApiKeyRequest(
            name=self.name, scopes=list(self.scopes),
            expires_at=rfc3339(self.expires_at) if self.expires_at is not None else "",
        )


class ApiKeyOut(CamelModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to tell keys apart")
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None

    @classmethod
    def from_proto(cls, key: tenant_pb2.ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id, name=key.name, prefix=key.prefix, scopes=list(key.scopes), created_at=optional(key.created_at),
            expires_at=optional(key.expires_at), last_used_at=optional(key.last_used_at),
            revoked_at=optional(key.revoked_at),
        )


class CreatedApiKeyOut(CamelModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    key: str = Field(description="The API key itself. It is shown only in this response and cannot be read again: "
                                 "store it now. Send it as `X-Api-Key: <key>` (or `Authorization: ApiKey <key>`).")

    @classmethod
    def from_proto(cls, created: tenant_pb2.CreatedApiKey) -> CreatedApiKeyOut:
        key = created.api_key
        return cls(id=key.id, name=key.name, prefix=key.prefix, scopes=list(key.scopes),
                   created_at=optional(key.created_at), expires_at=optional(key.expires_at), key=created.key)


class ApiKeyList(CamelModel):
    items: list[ApiKeyOut]

    @classmethod
    def from_proto(cls, listing: tenant_pb2.ListApiKeysResponse) -> ApiKeyList:
        return cls(items=[ApiKeyOut.from_proto(item) for item in listing.items])
