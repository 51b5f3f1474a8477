"""GET /api/messages/{id}/media through the real gateway from a fake server-streaming MessagingService over real
gRPC: the bytes of a multi-chunk file arrive whole with the headers of the first chunk; other tenants get 404,
pending media 409, failed 422; an upstream refusal before the first chunk is a problem, a break after it aborts the
response."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva.messaging.v1 import messaging_pb2

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 3 + b"\n%%EOF"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, response.json()["code"]


@pytest.fixture
def seed_media(upstreams: Any, seed_conversation: Callable[..., None]) -> Callable[..., str]:
    """Stores a media message (and, when ready, its bytes) in a new conversation of `account`'s tenant."""

    def seed(account: Any, message_id: str, *, data: bytes = PDF, status: str = "ready", mime_type: str =
             "application/pdf", filename: str = "", kind: str = "document") -> str:
        conversation_id = f"conv-{message_id}"
        seed_conversation(account, conversation_id)
        upstreams.directory.messages[conversation_id].append(messaging_pb2.Message(
            id=message_id, tenant_id=account.tenant_id, conversation_id=conversation_id, direction="inbound",
            type=kind, status="RECEIVED", content_json="{}",
            media=messaging_pb2.Media(status=status, media_id="meta-media-1", mime_type=mime_type,
                                      sha256=hashlib.sha256(data).hexdigest(), size=len(data) if status == "ready"
                                      else 0, filename=filename, caption="")))
        if status == "ready":
            upstreams.directory.media[message_id] = data
        return message_id

    return seed


async def test_a_multi_chunk_document_streams_whole_with_its_headers(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_media: Callable[..., str]
) -> None:
    directory = upstreams.directory
    owner = make_account(role="attendant")
    message_id = seed_media(owner, f"m-doc-{owner.tenant_id}", filename="Fatura São João.pdf")
    directory.media_chunk_size = 100  # 790 bytes: 8 chunks

    async with http.stream("GET", f"/api/messages/{message_id}/media", headers=bearer(owner.token)) as response:
        assert response.status_code == 200
        received = [piece async for piece in response.aiter_raw()]
    body = b"".join(received)
    assert body == PDF and hashlib.sha256(body).hexdigest() == hashlib.sha256(PDF).hexdigest()
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-length"] == str(len(PDF))
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Fatura So Joo.pdf\"; filename*=UTF-8''Fatura%20S%C3%A3o%20Jo%C3%A3o.pdf")
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert int(response.headers["ratelimit-remaining"]) > 0
    # the caller's token reached both RPCs
    assert directory.metadata_of("GetMessage")[-1]["authorization"] == f"Bearer {owner.token}"
    assert directory.metadata_of("GetMessageMedia")[-1]["authorization"] == f"Bearer {owner.token}"


async def test_a_picture_without_filename_is_inline_and_a_small_file_is_one_chunk(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_media: Callable[..., str]
) -> None:
    owner = make_account()
    upstreams.directory.media_chunk_size = 4
    jpeg = b"\xff\xd8\xff\xe0JFIF\x00\x01\x02\xff\xd9"
    message_id = seed_media(owner, f"m-img-{owner.tenant_id}", data=jpeg, mime_type="image/jpeg", kind="image")
    response = await http.get(f"/api/messages/{message_id}/media", headers=bearer(owner.token))
    assert response.status_code == 200 and response.content == jpeg
    assert (response.headers["content-type"], response.headers["content-disposition"]) == ("image/jpeg", "inline")
    upstreams.directory.media_chunk_size = 4096
    tiny = seed_media(owner, f"m-tiny-{owner.tenant_id}", data=b"ok", mime_type="audio/ogg", kind="audio")
    single = await http.get(f"/api/messages/{tiny}/media", headers=bearer(owner.token))
    assert (single.content, single.headers["content-length"]) == (b"ok", "2")


async def test_media_of_another_tenant_is_not_found_even_from_a_leaking_upstream(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_media: Callable[..., str]
) -> None:
    owner, stranger = make_account(), make_account()
    mine = seed_media(owner, f"m-private-{owner.tenant_id}")
    assert problem(await http.get(f"/api/messages/{mine}/media", headers=bearer(stranger.token))) == (
        404, "MESSAGE_NOT_FOUND")
    leaked = seed_media(owner, f"leaky-m-{owner.tenant_id}")
    streams = len(upstreams.directory.metadata_of("GetMessageMedia"))
    assert problem(await http.get(f"/api/messages/{leaked}/media", headers=bearer(stranger.token))) == (
        404, "NOT_FOUND")
    assert len(upstreams.directory.metadata_of("GetMessageMedia")) == streams  # no byte was asked for
    text = seed_media(owner, f"m-text-{owner.tenant_id}", status="", kind="text")
    assert problem(await http.get(f"/api/messages/{text}/media", headers=bearer(owner.token))) == (
        404, "MEDIA_NOT_FOUND")


async def test_pending_and_failed_media_are_refused_with_their_codes(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_media: Callable[..., str]
) -> None:
    owner = make_account()
    pending = seed_media(owner, f"m-pending-{owner.tenant_id}", status="pending")
    assert problem(await http.get(f"/api/messages/{pending}/media", headers=bearer(owner.token))) == (
        409, "MEDIA_NOT_READY")
    failed = seed_media(owner, f"m-failed-{owner.tenant_id}", status="failed")
    assert problem(await http.get(f"/api/messages/{failed}/media", headers=bearer(owner.token))) == (
        422, "MEDIA_FAILED")
    # the upstream refuses the stream itself before any chunk: still a problem, with its code (409 at the edge)
    refused = seed_media(owner, f"m-refused-{owner.tenant_id}")
    response = await http.get(f"/api/messages/{refused}/media", headers=bearer(owner.token))
    assert problem(response) == (409, "MEDIA_NOT_READY")
    assert problem(await http.get("/api/messages/nope/media", headers=bearer(owner.token))) == (
        404, "MESSAGE_NOT_FOUND")


async def test_a_stream_that_breaks_after_the_first_chunk_aborts_the_response(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_media: Callable[..., str]
) -> None:
    owner = make_account()
    upstreams.directory.media_chunk_size = 100
    broken = seed_media(owner, f"m-broken-{owner.tenant_id}")
    with pytest.raises(httpx.RemoteProtocolError):  # fewer bytes than Content-Length, then the connection closes
        await http.get(f"/api/messages/{broken}/media", headers=bearer(owner.token))
    # the gateway is fine afterwards
    fine = seed_media(owner, f"m-after-{owner.tenant_id}")
    assert (await http.get(f"/api/messages/{fine}/media", headers=bearer(owner.token))).content == PDF
