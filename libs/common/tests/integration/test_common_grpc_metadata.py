"""The caller's metadata as a service reads it (eva_common.grpc.metadata), over a real grpc.aio server on port 0
behind the shared interceptor: address, user agent and the call's request id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.grpc.client import create_channel
from eva_common.grpc.metadata import canonical_ip, request_meta
from eva_common.grpc.server import GrpcServer

pytestmark = pytest.mark.integration


class EchoMeta(messaging_pb2_grpc.MessagingServiceServicer):
    """Answers with the RequestMeta it read, as JSON in next_cursor."""

    async def ListMessages(self, request: messaging_pb2.ListMessagesRequest,
                           context: grpc.aio.ServicerContext) -> messaging_pb2.ListMessagesResponse:
        meta = request_meta(context)
        seen = {"ip": meta.ip, "user_agent": meta.user_agent, "request_id": meta.request_id}
        return messaging_pb2.ListMessagesResponse(next_cursor=json.dumps(seen))


@pytest_asyncio.fixture(loop_scope="session")
async def stub() -> AsyncIterator[messaging_pb2_grpc.MessagingServiceStub]:
    server = GrpcServer(
        registrars=[lambda s: messaging_pb2_grpc.add_MessagingServiceServicer_to_server(EchoMeta(), s)],
        service_names=["eva.messaging.v1.MessagingService"], verifier=None,
        public_methods=frozenset({"ListMessages"}),
    )
    await server.start()
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield messaging_pb2_grpc.MessagingServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0.5)


async def seen(stub: messaging_pb2_grpc.MessagingServiceStub, metadata: tuple[tuple[str, str], ...]) -> dict[str, str]:
    reply = await stub.ListMessages(messaging_pb2.ListMessagesRequest(), metadata=metadata, timeout=5)
    result: dict[str, str] = json.loads(reply.next_cursor)
    return result


async def test_the_gateways_view_of_the_caller_is_read_canonical_and_bounded(
    stub: messaging_pb2_grpc.MessagingServiceStub,
) -> None:
    got = await seen(stub, (("x-client-ip", " 2001:DB8::1 "), ("x-user-agent", "Mozilla/5.0 " + "x" * 900),
                            ("x-request-id", "req-42")))
    assert got["ip"] == "2001:db8::1" and got["request_id"] == "req-42"
    assert got["user_agent"].startswith("Mozilla/5.0 ") and len(got["user_agent"]) == 512


async def test_without_metadata_only_a_generated_request_id_is_known(
    stub: messaging_pb2_grpc.MessagingServiceStub,
) -> None:
    got = await seen(stub, ())
    assert got["ip"] is None and got["user_agent"] is None
    assert got["request_id"]  # the interceptor makes one up for every call


def test_an_address_that_does_not_parse_is_kept_as_given() -> None:
    assert canonical_ip("  ::FFFF:192.0.2.1 ") == "::ffff:c000:201"
    assert canonical_ip("unknown") == "unknown"
    assert canonical_ip("   ") is None and canonical_ip(None) is None
