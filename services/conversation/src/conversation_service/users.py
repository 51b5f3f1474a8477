"""The users an assignment may name, as auth knows them: AuthService.GetUser over gRPC with the caller's token
(auth then applies its own tenant rules; we check tenant and activity again). An API key (an automation handing a
guest to a person) may not read users at auth, so its lookups are made with this service's own token
(`as_service`); the tenant and activity checks here are then what scopes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva_common.errors import NotFound, PermissionDenied
from eva_common.grpc.client import rpc


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    id: str
    tenant_id: str
    active: bool


class UserDirectory(Protocol):
    async def find(self, *, user_id: str, token: str, as_service: bool = False) -> DirectoryUser | None: ...


class TokenSource(Protocol):
    async def token(self) -> str: ...


class AuthUserDirectory:
    def __init__(self, *, channel: Callable[[], grpc.aio.Channel], timeout: float,
                 service_tokens: TokenSource | None = None) -> None:
        self._channel = channel
        self._timeout = timeout
        self._service_tokens = service_tokens

    async def find(self, *, user_id: str, token: str, as_service: bool = False) -> DirectoryUser | None:
        """The user, or None when auth does not show it to this caller (unknown, or another tenant's).
        `as_service`: asked with this service's token (when it has one) instead of the caller's."""
        if as_service and self._service_tokens is not None:
            token = await self._service_tokens.token()
        stub = auth_pb2_grpc.AuthServiceStub(self._channel())
        try:
            user = await rpc(stub.GetUser, auth_pb2.GetUserRequest(user_id=user_id), token=token,
                             timeout=self._timeout)
        except (NotFound, PermissionDenied):
            return None
        return DirectoryUser(id=user.id, tenant_id=user.tenant_id, active=user.active)
