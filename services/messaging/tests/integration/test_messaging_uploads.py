"""Media uploads for sending: UploadMedia (client streaming, real grpc.aio server, real PostgreSQL) checks Meta's
types and sizes per kind before and while the bytes stream, stores them under uploads/<tenant>/<id> in the local
store and in S3 (real MinIO, multipart above the threshold) and records `media_uploads`; `ensure_uploaded_to_meta`
uploads the file to the real simulator's Graph media API, reuses Meta's id for the same number for 29 days, and
raises Meta's error as a GraphError."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from eva.messaging.v1 import messaging_pb2
from eva_common.db import transaction
from eva_common.errors import InvalidArgument
from eva_common.grpc.client import upload_rpc
from messaging_service.graph_errors import GraphError
from messaging_service.uploads import MediaUploads, ensure_uploaded_to_meta, upload_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 600  # 150 KiB: three chunks


async def chunks(data: bytes, *, mime_type: str, filename: str = "", kind: str = "", tenant_id: str = "",
                 size: int = 64 * 1024) -> AsyncIterator[messaging_pb2.UploadMediaChunk]:
    pieces: Sequence[bytes] = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    for index, piece in enumerate(pieces):
        if index == 0:
            yield messaging_pb2.UploadMediaChunk(data=piece, mime_type=mime_type, filename=filename, kind=kind,
                                                 tenant_id=tenant_id)
        else:
            yield messaging_pb2.UploadMediaChunk(data=piece)


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def stored_bytes(store, tenant: str, upload_id: str) -> bytes:
    return b"".join([c async for c in store.read(upload_key(tenant_id=tenant, upload_id=uuid.UUID(upload_id)))])


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_an_image_streams_into_the_store_and_is_recorded(stack, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    token = issuer.user_token(user_id="agent", tenant_id=tenant)
    uploaded = await upload_rpc(stack.stub.UploadMedia, chunks(PNG, mime_type="image/png", filename="../../room.png"),
                                token=token, timeout=10)
    assert (uploaded.kind, uploaded.mime_type, uploaded.size, uploaded.filename) == ("image", "image/png", len(PNG),
                                                                                     "room.png")
    assert uploaded.sha256 == sha256_b64(PNG) and uploaded.created_at.endswith("Z")
    assert await stored_bytes(stack.messaging.media_store, tenant, uploaded.id) == PNG
    assert (stack.media_root / "uploads" / tenant / uploaded.id).is_file()
    [row] = await as_tenant(owner_db, tenant, "SELECT * FROM media_uploads WHERE id = $1", uuid.UUID(uploaded.id))
    assert (row["tenant_id"], row["kind"], row["size"], row["sha256"], row["meta_media_id"]) == (
        tenant, "image", len(PNG), sha256_b64(PNG), None)
    # another tenant sees no row of it
    assert await as_tenant(owner_db, str(uuid.uuid4()), "SELECT id FROM media_uploads WHERE id = $1",
                           uuid.UUID(uploaded.id)) == []


async def test_the_kind_is_inferred_and_mime_parameters_dropped(stack, issuer) -> None:
    token = issuer.user_token(user_id="agent", tenant_id=str(uuid.uuid4()))
    sticker = await upload_rpc(stack.stub.UploadMedia, chunks(b"RIFF....WEBPVP8 ", mime_type="image/webp"),
                               token=token, timeout=10)
    voice = await upload_rpc(stack.stub.UploadMedia, chunks(b"OggS" * 10, mime_type="Audio/OGG; codecs=opus"),
                             token=token, timeout=10)
    pdf = await upload_rpc(stack.stub.UploadMedia, chunks(b"%PDF-1.7", mime_type="application/pdf",
                                                         filename="Fatura São João.pdf"), token=token, timeout=10)
    assert [(m.kind, m.mime_type) for m in (sticker, voice, pdf)] == [
        ("sticker", "image/webp"), ("audio", "audio/ogg"), ("document", "application/pdf")]
    assert pdf.filename == "Fatura São João.pdf"


@pytest.mark.parametrize(("data", "mime_type", "kind", "code", "detail"), [
    (b"GIF89a", "image/gif", "image", "MEDIA_TYPE_NOT_ALLOWED", "image/jpeg, image/png"),
    (b"RIFF", "image/webp", "image", "MEDIA_TYPE_NOT_ALLOWED", "image/jpeg, image/png"),
    (b"MZ", "application/x-msdownload", "", "MEDIA_TYPE_NOT_ALLOWED", "application/pdf"),
    (b"x", "", "document", "MEDIA_TYPE_NOT_ALLOWED", "MIME type"),
    (b"x", "image/png", "gif", "VALIDATION_FAILED", "type must be one of"),
    (b"", "image/png", "", "EMPTY_MEDIA", "empty"),
    (b"R" * (500 * 1024 + 1), "image/webp", "sticker", "MEDIA_TOO_LARGE", "512,000 bytes for sticker"),
    (b"\xff" * (5 * 1024 * 1024 + 1), "image/jpeg", "", "MEDIA_TOO_LARGE", "for image"),
])
async def test_meta_types_and_sizes_are_enforced_and_nothing_is_kept(
        stack, issuer, owner_db, data: bytes, mime_type: str, kind: str, code: str, detail: str) -> None:
    tenant = str(uuid.uuid4())
    token = issuer.user_token(user_id="agent", tenant_id=tenant)
    with pytest.raises(InvalidArgument) as caught:
        await upload_rpc(stack.stub.UploadMedia, chunks(data, mime_type=mime_type, kind=kind), token=token,
                         timeout=10)
    assert caught.value.code == code and detail in caught.value.detail, caught.value.detail
    assert await as_tenant(owner_db, tenant, "SELECT id FROM media_uploads") == []
    folder = stack.media_root / "uploads" / tenant
    assert not folder.exists() or [p.name for p in folder.iterdir()] == []


async def test_api_keys_need_messages_send_and_services_name_the_tenant(stack, issuer) -> None:
    tenant = str(uuid.uuid4())
    reader = issuer.api_key_token(key_id="k1", tenant_id=tenant, scopes=["messages:read"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.UploadMedia(chunks(b"%PDF", mime_type="application/pdf"),
                                     metadata=(("authorization", f"Bearer {reader}"),), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(refused.value.trailing_metadata())["eva-error-code"] == "SCOPE_MISSING"
    sender = issuer.api_key_token(key_id="k2", tenant_id=tenant, scopes=["messages:send"])
    assert (await upload_rpc(stack.stub.UploadMedia, chunks(b"%PDF", mime_type="application/pdf"), token=sender,
                             timeout=10)).kind == "document"
    service = issuer.service_token(service="n8n-integration")
    named = await upload_rpc(stack.stub.UploadMedia, chunks(b"%PDF", mime_type="application/pdf", tenant_id=tenant),
                             token=service, timeout=10)
    assert await stored_bytes(stack.messaging.media_store, tenant, named.id) == b"%PDF"
    with pytest.raises(grpc.aio.AioRpcError) as unnamed:
        await stack.stub.UploadMedia(chunks(b"%PDF", mime_type="application/pdf"),
                                     metadata=(("authorization", f"Bearer {service}"),), timeout=10)
    assert dict(unnamed.value.trailing_metadata())["eva-error-code"] == "TENANT_REQUIRED"


# ------------------------------------------------------------------ to Meta (the simulator's Graph media API)


@pytest_asyncio.fixture
async def graph_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def test_an_upload_goes_to_meta_once_per_number_and_month(stack, issuer, simulator, graph_http) -> None:
    tenant = str(uuid.uuid4())
    token = issuer.user_token(user_id="agent", tenant_id=tenant)
    document = b"%PDF-1.7 " + bytes(range(256)) * 400  # 100 KiB
    uploaded = await upload_rpc(stack.stub.UploadMedia, chunks(document, mime_type="application/pdf",
                                                              filename='menu "2026".pdf'), token=token, timeout=10)
    uploads = MediaUploads(sessions=stack.messaging.sessions, store=stack.messaging.media_store)
    sessions, store = stack.messaging.sessions, stack.messaging.media_store

    async def to_meta(phone_number_id: str, access_token: str) -> str:
        row = await uploads.get(tenant_id=tenant, upload_id=uploaded.id)
        return await ensure_uploaded_to_meta(
            sessions, row, phone_number_id=phone_number_id, access_token=access_token, http=graph_http,
            graph_url=simulator.url, api_version="v21.0", store=store)

    posts = lambda: [p for m, p in simulator.requests if m == "POST" and p.endswith("/media")]  # noqa: E731
    before = len(posts())
    media_id = await to_meta(simulator.phone_number_id, simulator.access_token)
    assert posts()[before:] == [f"/v21.0/{simulator.phone_number_id}/media"]
    described = (await graph_http.get(f"{simulator.url}/v21.0/{media_id}",
                                      headers={"Authorization": f"Bearer {simulator.access_token}"})).json()
    assert (described["mime_type"], described["sha256"], described["file_size"]) == (
        "application/pdf", sha256_b64(document), str(len(document)))
    row = await uploads.get(tenant_id=tenant, upload_id=uploaded.id)
    assert (row.meta_media_id, row.meta_phone_number_id) == (media_id, simulator.phone_number_id)

    # the same number within 29 days: Meta's id again, no upload
    assert await to_meta(simulator.phone_number_id, simulator.access_token) == media_id
    assert len(posts()) == before + 1
    # another number: uploaded for it
    other, other_token = "1065" + str(uuid.uuid4().int)[:11], f"EAAG-{uuid.uuid4().hex}"
    await simulator.add_number(other, access_token=other_token)
    second = await to_meta(other, other_token)
    assert second != media_id and len(posts()) == before + 2
    # 29 days later: uploaded again
    async with transaction(stack.messaging.sessions, tenant_id=tenant) as session:
        connection = await session.connection()
        await connection.execute(sa.text("UPDATE media_uploads SET meta_uploaded_at = :at WHERE id = :id"),
                                 {"at": datetime.now(UTC) - timedelta(days=29, minutes=1),
                                  "id": uuid.UUID(uploaded.id)})
    third = await to_meta(other, other_token)
    assert third not in (media_id, second) and len(posts()) == before + 3


async def test_a_refused_upload_is_metas_graph_error(stack, issuer, simulator, graph_http) -> None:
    tenant = str(uuid.uuid4())
    token = issuer.user_token(user_id="agent", tenant_id=tenant)
    uploaded = await upload_rpc(stack.stub.UploadMedia, chunks(PNG, mime_type="image/png"), token=token, timeout=10)
    row = await MediaUploads(sessions=stack.messaging.sessions, store=stack.messaging.media_store).get(
        tenant_id=tenant, upload_id=uploaded.id)
    with pytest.raises(GraphError) as caught:
        await ensure_uploaded_to_meta(
            stack.messaging.sessions, row, phone_number_id=simulator.phone_number_id, access_token="EAAG-wrong",
            http=graph_http, graph_url=simulator.url, api_version="v21.0", store=stack.messaging.media_store)
    assert (caught.value.code, caught.value.http_status) == (190, 400)
    assert caught.value.token_invalid
    with pytest.raises(GraphError) as unreachable:
        await ensure_uploaded_to_meta(
            stack.messaging.sessions, row, phone_number_id=simulator.phone_number_id, access_token="x",
            http=graph_http, graph_url="http://127.0.0.1:9", api_version="v21.0", store=stack.messaging.media_store)
    assert (unreachable.value.code, unreachable.value.http_status) == (None, 503)


# ------------------------------------------------------------------ S3 (MinIO)


@pytest_asyncio.fixture(scope="module")
async def s3_stack(infra, database, issuer, stack_builder, s3_bucket, s3_settings, tmp_path_factory) -> Any:
    async with stack_builder(infra, database, issuer, tmp_path_factory.mktemp("unused-media"),
                             **s3_settings(s3_bucket, media_s3_prefix="eva-test/uploads")) as built:
        yield built


async def test_a_large_document_goes_to_s3_in_parts(s3_stack, issuer, s3_client, s3_bucket, simulator,
                                                    graph_http) -> None:
    tenant = str(uuid.uuid4())
    token = issuer.user_token(user_id="agent", tenant_id=tenant)
    document = b"%PDF-1.7 " + uuid.uuid4().bytes * (20 * 1024 * 1024 // 16)  # 20 MiB: over the 16 MiB threshold
    uploaded = await upload_rpc(s3_stack.stub.UploadMedia, chunks(document, mime_type="application/pdf"),
                                token=token, timeout=60)
    assert (uploaded.size, uploaded.sha256) == (len(document), sha256_b64(document))
    async with s3_client() as client:
        head = await client.head_object(Bucket=s3_bucket, Key=f"eva-test/uploads/uploads/{tenant}/{uploaded.id}")
    assert head["ContentLength"] == len(document) and head["Metadata"]["sha256"] == sha256_b64(document)
    # and from S3 to Meta, streamed
    row = await MediaUploads(sessions=s3_stack.messaging.sessions, store=s3_stack.messaging.media_store).get(
        tenant_id=tenant, upload_id=uploaded.id)
    media_id = await ensure_uploaded_to_meta(
        s3_stack.messaging.sessions, row, phone_number_id=simulator.phone_number_id,
        access_token=simulator.access_token, http=graph_http, graph_url=simulator.url, api_version="v21.0",
        store=s3_stack.messaging.media_store)
    described = (await graph_http.get(f"{simulator.url}/v21.0/{media_id}",
                                      headers={"Authorization": f"Bearer {simulator.access_token}"})).json()
    assert described["sha256"] == sha256_b64(document)
