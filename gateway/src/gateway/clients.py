"""One grpc.aio channel per upstream service, with deadlines and the caller's token forwarded in metadata, plus
the caller's address and user agent (`x-client-ip`, `x-user-agent`) for the services' audit and throttling.

Errors come back as the DomainError the upstream raised (eva_common.grpc.client.rpc), so the shared HTTP handler
renders them with their stable code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
from eva.auth.v1 import auth_pb2_grpc
from eva.conversation.v1 import conversation_pb2_grpc
from eva.messaging.v1 import messaging_pb2_grpc
from eva.n8n.v1 import webhooks_pb2_grpc
from eva.tenant.v1 import tenant_pb2_grpc
from eva_common.grpc.client import call_metadata, create_channel, domain_error_from_rpc, rpc, upload_rpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.client_context import current_client

T = TypeVar("T")

# The upstreams the gateway calls, with the gRPC service each one reports health for.
UPSTREAM_SERVICES: Mapping[str, str] = {
    "auth": "eva.auth.v1.AuthService",
    "tenant": "eva.tenant.v1.TenantService",
    "conversation": "eva.conversation.v1.ConversationService",
    "messaging": "eva.messaging.v1.MessagingService",
    "n8n-integration": "eva.n8n.v1.WebhookService",
}


class UpstreamClients:
    """Stubs of every upstream over long-lived channels; `call` applies the deadline and forwards the token."""

    def __init__(self, *, targets: Mapping[str, str], deadline_seconds: float, health_timeout_seconds: float,
                 stream_deadline_seconds: float = 300.0) -> None:
        missing = set(UPSTREAM_SERVICES) - set(targets)
        if missing:
            raise ValueError(f"no gRPC target for {sorted(missing)}")
        self._deadline = deadline_seconds
        self._stream_deadline = stream_deadline_seconds
        self._health_timeout = health_timeout_seconds
        self._channels: dict[str, grpc.aio.Channel] = {
            name: create_channel(targets[name]) for name in UPSTREAM_SERVICES
        }
        self.auth = auth_pb2_grpc.AuthServiceStub(self._channels["auth"])
        self.tenant = tenant_pb2_grpc.TenantServiceStub(self._channels["tenant"])
        self.conversation = conversation_pb2_grpc.ConversationServiceStub(self._channels["conversation"])
        self.messaging = messaging_pb2_grpc.MessagingServiceStub(self._channels["messaging"])
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(self._channels["n8n-integration"])

    def channel(self, name: str) -> grpc.aio.Channel:
        return self._channels[name]

    async def call(self, method: Callable[..., Awaitable[T]], request: Any, *, token: str | None) -> T:
        """One unary call with the gateway's deadline; `token` is the caller's access token (None for public RPCs).
        The caller's address and user agent ride along when the call is made for a client."""
        return await rpc(_with_client_metadata(method), request, token=token, timeout=self._deadline)

    async def stream(self, method: Callable[..., Any], request: Any, *, token: str | None) -> AsyncGenerator[Any, None]:
        """One server-streaming call (deadline `stream_deadline_seconds` for the whole stream), with the same
        metadata as `call`. A gRPC failure, before or between messages, is raised as the DomainError the upstream
        raised; closing the iterator early cancels the call."""
        client = current_client()
        metadata = (*call_metadata(token), *(client.metadata() if client is not None else ()))
        call = method(request, metadata=metadata, timeout=self._stream_deadline)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise domain_error_from_rpc(error) from error
        finally:
            call.cancel()

    async def upload(self, method: Callable[..., Awaitable[T]], requests: AsyncIterable[Any], *,
                     token: str | None) -> T:
        """One client-streaming call (deadline `stream_deadline_seconds`): the messages of `requests` are sent as
        they are produced, with the same metadata as `call`; a gRPC failure is raised as the upstream's
        DomainError."""
        client = current_client()
        return await upload_rpc(method, requests, token=token, timeout=self._stream_deadline,
                                metadata=client.metadata() if client is not None else ())

    async def serving(self, name: str) -> bool:
        """Whether the upstream's gRPC health service reports SERVING (short deadline, no waiting for ready)."""
        stub = health_pb2_grpc.HealthStub(self._channels[name])
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service=UPSTREAM_SERVICES[name]), timeout=self._health_timeout
        )
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _with_client_metadata(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """`method` with the current client's `x-client-ip` and `x-user-agent` appended to the metadata `rpc` builds."""
    client = current_client()
    if client is None:
        return method

    def call(request: Any, *, metadata: tuple[tuple[str, str], ...] = (), **kwargs: Any) -> Awaitable[T]:
        return method(request, metadata=(*metadata, *client.metadata()), **kwargs)

    return call
