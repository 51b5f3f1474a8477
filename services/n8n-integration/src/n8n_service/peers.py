"""The gRPC peers of the /n8n API: auth (ExchangeApiKey, JWKS, this service's token), conversation and messaging.

Calls made for a key carry the key's exchanged `api_key` token (the peers check its tenant and scopes themselves);
the two calls only a service may make — ResolveInboundContacts (a guest named by `to`) and SendMessage as the
automation — carry this service's own token and name the key's tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.conversation.v1 import conversation_pb2_grpc
from eva.messaging.v1 import messaging_pb2_grpc
from eva_common.grpc.client import create_channel, rpc

T = TypeVar("T")


class TokenSource(Protocol):
    async def token(self) -> str: ...


class Peers:
    def __init__(self, *, auth: grpc.aio.Channel, conversation_target: str, messaging_target: str,
                 service_tokens: TokenSource, deadline_seconds: float) -> None:
        self._conversation_channel = create_channel(conversation_target)
        self._messaging_channel = create_channel(messaging_target)
        self.auth = auth_pb2_grpc.AuthServiceStub(auth)
        self.conversation = conversation_pb2_grpc.ConversationServiceStub(self._conversation_channel)
        self.messaging = messaging_pb2_grpc.MessagingServiceStub(self._messaging_channel)
        self._service_tokens = service_tokens
        self._deadline = deadline_seconds

    async def call(self, method: Callable[..., Awaitable[T]], request: Any, *, token: str | None) -> T:
        """One unary call with the deadline; a failure is the DomainError the peer raised (its code kept)."""
        return await rpc(method, request, token=token, timeout=self._deadline)

    async def as_service(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        return await self.call(method, request, token=await self._service_tokens.token())

    async def exchange_api_key(self, request: auth_pb2.ExchangeApiKeyRequest) -> auth_pb2.ExchangeApiKeyResponse:
        return await self.call(self.auth.ExchangeApiKey, request, token=None)

    async def close(self) -> None:
        await self._conversation_channel.close()
        await self._messaging_channel.close()
