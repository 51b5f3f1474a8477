"""The gRPC server interceptor and client helper over a real grpc.aio server on port 0: callers are verified,
DomainErrors keep their code across the hop, crashes become INTERNAL without leaking details."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.auth import current_principal
from eva_common.errors import FailedPrecondition, Internal, NotFound, Overloaded, Unauthenticated
from eva_common.grpc.client import create_channel, rpc
from eva_common.grpc.server import GrpcServer
from eva_testing.tokens import TestTokenIssuer
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration
ISSUER = TestTokenIssuer()


class FakeMessaging(messaging_pb2_grpc.MessagingServiceServicer):
    busy_calls = 0

    async def GetMessage(self, request: messaging_pb2.GetMessageRequest, context: object) -> messaging_pb2.Message:
        principal = current_principal()
        if request.message_id == "busy":
            FakeMessaging.busy_calls += 1
            raise Overloaded("too many requests at once", retry_after=3)
        if request.message_id == "missing":
            raise NotFound("no such message", code="MESSAGE_NOT_FOUND")
        if request.message_id == "crash":
            raise RuntimeError("secret internals")
        if request.message_id == "closed":
            raise FailedPrecondition("the window closed", code="WINDOW_CLOSED",
                                     extra={"windowClosedAt": "2026-12-05T10:00:00.000Z"})
        return messaging_pb2.Message(id=request.message_id, tenant_id=principal.require_tenant())

    async def ListMessages(self, request: messaging_pb2.ListMessagesRequest, context: object) -> messaging_pb2.ListMessagesResponse:  # noqa: E501
        return messaging_pb2.ListMessagesResponse(next_cursor="public")


@pytest_asyncio.fixture(loop_scope="session")
async def stub() -> AsyncIterator[messaging_pb2_grpc.MessagingServiceStub]:
    server = GrpcServer(
        registrars=[lambda s: messaging_pb2_grpc.add_MessagingServiceServicer_to_server(FakeMessaging(), s)],
        service_names=["eva.messaging.v1.MessagingService"],
        verifier=ISSUER.verifier(),
        public_methods=frozenset({"ListMessages"}),
    )
    await server.start()
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield messaging_pb2_grpc.MessagingServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="eva.messaging.v1.MessagingService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await server.stop(0.5)


async def test_verified_caller_reaches_the_handler(stub: messaging_pb2_grpc.MessagingServiceStub) -> None:
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    reply = await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="m1"), token=token, timeout=5)
    assert (reply.id, reply.tenant_id) == ("m1", "tenant-a")


async def test_domain_error_keeps_its_code(stub: messaging_pb2_grpc.MessagingServiceStub) -> None:
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    with pytest.raises(NotFound) as caught:
        await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="missing"), token=token, timeout=5)
    assert caught.value.code == "MESSAGE_NOT_FOUND" and caught.value.http_status == 404


async def test_domain_error_keeps_its_facts(stub: messaging_pb2_grpc.MessagingServiceStub) -> None:
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    with pytest.raises(FailedPrecondition) as caught:
        await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="closed"), token=token, timeout=5)
    assert caught.value.code == "WINDOW_CLOSED"
    assert caught.value.extra == {"windowClosedAt": "2026-12-05T10:00:00.000Z"}


async def test_crash_is_internal_and_says_nothing(stub: messaging_pb2_grpc.MessagingServiceStub) -> None:
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await stub.GetMessage(messaging_pb2.GetMessageRequest(message_id="crash"),
                              metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    assert raw.value.code() == grpc.StatusCode.INTERNAL and "secret" not in (raw.value.details() or "")
    with pytest.raises(Internal):
        await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="crash"), token=token, timeout=5)


async def test_missing_expired_and_forged_tokens_are_unauthenticated(
    stub: messaging_pb2_grpc.MessagingServiceStub,
) -> None:
    for token in (None, ISSUER.user_token(user_id="u", tenant_id="t", ttl=-30),
                  TestTokenIssuer(kid=ISSUER.kid).user_token(user_id="u", tenant_id="t")):
        with pytest.raises(Unauthenticated):
            await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="m"), token=token, timeout=5)


async def test_public_methods_need_no_token(stub: messaging_pb2_grpc.MessagingServiceStub) -> None:
    reply = await rpc(stub.ListMessages, messaging_pb2.ListMessagesRequest(), token=None, timeout=5)
    assert reply.next_cursor == "public"


async def test_a_shed_call_is_overloaded_503_with_retry_after_and_the_channel_does_not_retry_it(
    stub: messaging_pb2_grpc.MessagingServiceStub,
) -> None:
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    before = FakeMessaging.busy_calls
    with pytest.raises(Overloaded) as caught:
        await rpc(stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="busy"), token=token, timeout=5)
    assert (caught.value.code, caught.value.http_status, caught.value.retry_after) == ("OVERLOADED", 503, 3)
    assert FakeMessaging.busy_calls == before + 1  # UNAVAILABLE would have been retried up to 4 times
