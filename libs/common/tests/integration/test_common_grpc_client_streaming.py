"""Client-streaming RPCs (UploadMedia) through the shared server interceptor and `upload_rpc`, over a real grpc.aio
server on port 0: the caller is verified before the handler reads a message, DomainErrors keep their code across
the hop, crashes become INTERNAL without details, and every call is counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.auth import current_principal
from eva_common.errors import Internal, InvalidArgument, Unauthenticated
from eva_common.grpc.client import create_channel, upload_rpc
from eva_common.grpc.server import GrpcServer
from eva_common.metrics import GRPC_REQUESTS
from eva_testing.tokens import TestTokenIssuer

pytestmark = pytest.mark.integration
ISSUER = TestTokenIssuer()
METHOD = "/eva.messaging.v1.MessagingService/UploadMedia"


class FakeUploads(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(self) -> None:
        self.reads = 0

    async def UploadMedia(self, requests: AsyncIterator[messaging_pb2.UploadMediaChunk],
                          context: object) -> messaging_pb2.UploadedMedia:
        tenant = current_principal().require_tenant()
        size, first = 0, None
        async for chunk in requests:
            self.reads += 1
            first = first or chunk
            size += len(chunk.data)
            if chunk.data == b"crash":
                raise RuntimeError("secret internals")
            if size > 10:
                raise InvalidArgument("the file is larger than 10 bytes", code="MEDIA_TOO_LARGE")
        assert first is not None
        return messaging_pb2.UploadedMedia(id=tenant, size=size, mime_type=first.mime_type)


@pytest_asyncio.fixture(loop_scope="session")
async def served() -> AsyncIterator[tuple[messaging_pb2_grpc.MessagingServiceStub, FakeUploads]]:
    servicer = FakeUploads()
    server = GrpcServer(
        registrars=[lambda s: messaging_pb2_grpc.add_MessagingServiceServicer_to_server(servicer, s)],
        service_names=["eva.messaging.v1.MessagingService"], verifier=ISSUER.verifier())
    await server.start()
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield messaging_pb2_grpc.MessagingServiceStub(channel), servicer
    finally:
        await channel.close()
        await server.stop(0.5)


async def chunks(*pieces: bytes) -> AsyncIterator[messaging_pb2.UploadMediaChunk]:
    for index, piece in enumerate(pieces):
        yield messaging_pb2.UploadMediaChunk(data=piece, mime_type="image/png" if index == 0 else "")


def counted(code: str) -> float:
    return GRPC_REQUESTS.labels(METHOD, code)._value.get()  # type: ignore[no-any-return]


async def test_a_verified_caller_streams_its_chunks(served) -> None:
    stub, _ = served
    before = counted("OK")
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    reply = await upload_rpc(stub.UploadMedia, chunks(b"abc", b"defg"), token=token, timeout=5)
    assert (reply.id, reply.size, reply.mime_type) == ("tenant-a", 7, "image/png")
    assert counted("OK") == before + 1


async def test_a_domain_error_keeps_its_code(served) -> None:
    stub, _ = served
    before = counted("INVALID_ARGUMENT")
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    with pytest.raises(InvalidArgument) as caught:
        await upload_rpc(stub.UploadMedia, chunks(b"123456", b"7890123"), token=token, timeout=5)
    assert caught.value.code == "MEDIA_TOO_LARGE" and caught.value.http_status == 400
    assert counted("INVALID_ARGUMENT") == before + 1


async def test_a_crash_is_internal_and_says_nothing(served) -> None:
    stub, _ = served
    token = ISSUER.user_token(user_id="u1", tenant_id="tenant-a")
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await stub.UploadMedia(chunks(b"crash"), metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    assert raw.value.code() == grpc.StatusCode.INTERNAL and "secret" not in (raw.value.details() or "")
    with pytest.raises(Internal):
        await upload_rpc(stub.UploadMedia, chunks(b"crash"), token=token, timeout=5)


async def test_an_unverified_caller_is_refused_before_a_chunk_is_read(served) -> None:
    stub, servicer = served
    reads = servicer.reads
    for token in (None, ISSUER.user_token(user_id="u", tenant_id="t", ttl=-30)):
        with pytest.raises(Unauthenticated):
            await upload_rpc(stub.UploadMedia, chunks(b"abc"), token=token, timeout=5)
    assert servicer.reads == reads
