"""The users an assignment may name, as auth knows them: AuthService.GetUser over gRPC with the caller's token
(auth then applies its own tenant rules; we check tenant and activity again)."""

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
    async def find(self, *, user_id: str, token: str) -> DirectoryUser | None: ...


class AuthUserDirectory:
    def __init__(self, *, channel: Callable[[], grpc.aio.Channel], timeout: float) -> None:
        self._channel = channel
        self._timeout = timeout

    async def find(self, *, user_id: str, token: str) -> DirectoryUser | None:
        """The user, or None when auth does not show it to this caller (unknown, or another tenant's)."""
        stub = auth_pb2_grpc.AuthServiceStub(self._channel())
        try:
            user = await rpc(stub.GetUser, auth_pb2.GetUserRequest(user_id=user_id), token=token,
                             timeout=self._timeout)
        except (NotFound, PermissionDenied):
            return None
        return DirectoryUser(id=user.id, tenant_id=user.tenant_id, active=user.active)
