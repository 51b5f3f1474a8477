"""POST /api/media through the real gateway to a fake client-streaming MessagingService.UploadMedia over real gRPC
(the shared GrpcServer and its interceptor): the file reaches the service in 64 KiB chunks with the metadata on the
first, `type` is passed or left for the service to infer, the answer is 201 camelCase; the service's refusals keep
their codes; API keys need `messages:send`; the body limit is raised for this route only."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.auth import current_principal
from eva_common.errors import InvalidArgument
from eva_common.grpc.server import GrpcServer
from gateway.middleware import MEDIA_UPLOAD_BODY_BYTES, BodySizeLimitMiddleware

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 520 + b"\n%%EOF"  # 133 KiB: three chunks


class FakeUploads(messaging_pb2_grpc.MessagingServiceServicer):
    """UploadMedia only: records every call's chunks and caller, refuses GIFs like the real service."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def UploadMedia(self, requests: AsyncIterator[messaging_pb2.UploadMediaChunk],
                          context: Any) -> messaging_pb2.UploadedMedia:
        principal = current_principal()
        principal.require_scope("messages:send")
        chunks = [chunk async for chunk in requests]
        first = chunks[0]
        data = b"".join(chunk.data for chunk in chunks)
        self.calls.append({"sizes": [len(chunk.data) for chunk in chunks], "first": first, "data": data,
                           "tenant": principal.require_tenant(), "metadata": dict(context.invocation_metadata())})
        if first.mime_type == "image/gif":
            raise InvalidArgument("WhatsApp does not send image/gif as image: allowed are image/jpeg, image/png",
                                  code="MEDIA_TYPE_NOT_ALLOWED")
        kind = first.kind or ("document" if first.mime_type == "application/pdf" else "image")
        return messaging_pb2.UploadedMedia(
            id="0192f0c4-0000-7000-8000-00000000000a", mime_type=first.mime_type, size=len(data),
            filename=first.filename, sha256=hashlib.sha256(data).hexdigest(), kind=kind,
            created_at="2026-12-06T10:00:00.000Z")


@pytest.fixture(scope="module")
async def uploads_upstream(issuer: Any) -> AsyncIterator[tuple[str, FakeUploads]]:
    servicer = FakeUploads()
    server = GrpcServer(
        registrars=[lambda s: messaging_pb2_grpc.add_MessagingServiceServicer_to_server(servicer, s)],
        service_names=["eva.messaging.v1.MessagingService"], verifier=issuer.verifier())
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}", servicer
    finally:
        await server.stop(0)


@pytest.fixture
async def media_http(gateway_factory: Callable[..., Any],
                     uploads_upstream: tuple[str, FakeUploads]) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose messaging upstream is the fake above (auth and tenant: the shared fakes)."""
    running = await gateway_factory(messaging_grpc_target=uploads_upstream[0])
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_file_streams_to_the_service_in_64_kib_chunks(
        media_http: httpx.AsyncClient, make_account: Callable[..., Any],
        uploads_upstream: tuple[str, FakeUploads]) -> None:
    servicer = uploads_upstream[1]
    owner = make_account(role="attendant")
    response = await media_http.post("/api/media", headers=bearer(owner.token),
                                     files={"file": ("Menu São João.pdf", PDF, "application/pdf")})
    assert response.status_code == 201, response.text
    assert response.json() == {
        "id": "0192f0c4-0000-7000-8000-00000000000a", "mimeType": "application/pdf", "size": len(PDF),
        "filename": "Menu São João.pdf", "sha256": hashlib.sha256(PDF).hexdigest(), "kind": "document",
        "createdAt": "2026-12-06T10:00:00.000Z"}
    call = servicer.calls[-1]
    assert call["data"] == PDF and call["sizes"] == [65536, 65536, len(PDF) - 131072]
    first = call["first"]
    assert (first.mime_type, first.filename, first.kind) == ("application/pdf", "Menu São João.pdf", "")
    assert call["tenant"] == owner.tenant_id and call["metadata"]["authorization"] == f"Bearer {owner.token}"
    assert "x-client-ip" in call["metadata"]
    assert int(response.headers["ratelimit-remaining"]) > 0


async def test_the_type_is_passed_and_refusals_keep_their_code(
        media_http: httpx.AsyncClient, make_account: Callable[..., Any],
        uploads_upstream: tuple[str, FakeUploads]) -> None:
    owner = make_account()
    sticker = await media_http.post("/api/media", headers=bearer(owner.token), data={"type": "sticker"},
                                    files={"file": ("s.webp", b"RIFF....WEBP", "image/webp")})
    assert (sticker.status_code, sticker.json()["kind"]) == (201, "sticker")
    assert uploads_upstream[1].calls[-1]["first"].kind == "sticker"
    gif = await media_http.post("/api/media", headers=bearer(owner.token),
                                files={"file": ("a.gif", b"GIF89a", "image/gif")})
    assert gif.status_code == 400 and gif.headers["content-type"] == "application/problem+json"
    assert gif.json()["code"] == "MEDIA_TYPE_NOT_ALLOWED" and "image/jpeg" in gif.json()["detail"]
    bad_type = await media_http.post("/api/media", headers=bearer(owner.token), data={"type": "gif"},
                                     files={"file": ("a.gif", b"GIF89a", "image/gif")})
    assert (bad_type.status_code, bad_type.json()["code"]) == (400, "VALIDATION_FAILED")
    no_file = await media_http.post("/api/media", headers=bearer(owner.token), data={"type": "image"})
    assert (no_file.status_code, no_file.json()["code"]) == (400, "VALIDATION_FAILED")


async def test_api_keys_need_messages_send(
        media_http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any) -> None:
    owner = make_account()
    directory = upstreams.directory
    _, reader = directory.add_api_key(tenant_id=owner.tenant_id, scopes=["messages:read"])
    _, sender = directory.add_api_key(tenant_id=owner.tenant_id, scopes=["messages:send"])
    refused = await media_http.post("/api/media", headers={"X-Api-Key": reader},
                                    files={"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert (refused.status_code, refused.json()["code"]) == (403, "SCOPE_MISSING")
    accepted = await media_http.post("/api/media", headers={"X-Api-Key": sender},
                                     files={"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert accepted.status_code == 201, accepted.text
    anonymous = await media_http.post("/api/media", files={"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert anonymous.status_code == 401


async def test_the_body_limit_is_raised_for_this_route_only(
        media_http: httpx.AsyncClient, make_account: Callable[..., Any],
        uploads_upstream: tuple[str, FakeUploads]) -> None:
    owner = make_account()
    two_mib = b"\x00" * (2 * 1024 * 1024)  # over the API's 1 MiB
    response = await media_http.post("/api/media", headers=bearer(owner.token),
                                     files={"file": ("big.pdf", two_mib, "application/pdf")})
    assert response.status_code == 201 and uploads_upstream[1].calls[-1]["data"] == two_mib
    elsewhere = await media_http.post("/api/tags", headers={**bearer(owner.token), "Content-Type": "application/json"},
                                      content=b"[" + b" " * len(two_mib))
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_a_declared_length_over_the_route_limit_is_refused_before_reading() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    limit = BodySizeLimitMiddleware(app, max_bytes=1024 * 1024)
    for path, length, expected in (("/api/media", MEDIA_UPLOAD_BODY_BYTES + 1, 413),
                                   ("/api/media", 100 * 1024 * 1024, None), ("/api/messages", 2 * 1024 * 1024, 413)):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", str(length).encode())]}
        await limit(scope, receive, send)
        assert (sent[0]["status"] if sent else None) == expected, path
    assert reached == ["/api/media"]
