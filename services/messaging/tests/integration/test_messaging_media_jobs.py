"""Media: stored at once as `pending`, downloaded by the retried media job (Graph lookup + download with the tenant's
bearer, sha256 checked), stored under the media root, announced with `message.updated`, and streamed by
GetMessageMedia in 64 KiB chunks to users of the same tenant only."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from eva.messaging.v1 import messaging_pb2

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
CHUNK = 64 * 1024


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def image_payload(*, media_id: str, sha256: str) -> dict[str, Any]:
    """The reference's image (§3.3) with its own wamid, media id and announced sha256."""
    payload: dict[str, Any] = json.loads((FIXTURES / "image.json").read_text())
    payload = copy.deepcopy(payload)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.IMG{uuid.uuid4().hex}"
    message["image"].update(id=media_id, sha256=sha256)
    return payload


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def receive_image(stack, delivery, owner_db, tenant: str, content: bytes, **graph: Any) -> tuple[str, str]:
    """Processes an image delivery whose media the fake Graph serves; returns (message id, media id)."""
    media_id = str(uuid.uuid4().int)[:16]
    digest = stack.graph.add(media_id, content, **graph)
    await stack.messaging.processor.process(delivery(image_payload(media_id=media_id, sha256=digest),
                                                     tenant_id=tenant))
    [row] = await as_tenant(owner_db, tenant, "SELECT id FROM messages WHERE media->>'mediaId' = $1", media_id)
    return str(row["id"]), media_id


async def work_until_done(stack, owner_db, tenant: str, message_id: str, eventually) -> Any:
    """Drives the media job (retries are due after a short backoff) until it is done or failed."""
    async def probe() -> Any:
        await stack.messaging.media_worker.run_once()
        rows = await as_tenant(owner_db, tenant, "SELECT state, attempts, last_error FROM media_jobs "
                                                 "WHERE message_id = $1", uuid.UUID(message_id))
        return rows[0] if rows and rows[0]["state"] != "pending" else None

    return await eventually(probe, timeout=20)


async def test_a_media_message_is_pending_then_stored_announced_and_streamed_in_chunks(
        stack, delivery, owner_db, issuer, eventually) -> None:
    tenant = str(uuid.uuid4())
    content = bytes(range(256)) * 512 + b"tail!"  # 2 full chunks of 64 KiB and 5 bytes
    message_id, media_id = await receive_image(stack, delivery, owner_db, tenant, content)
    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))

    pending = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user)
    assert (pending.media.status, pending.media.media_id, pending.media.caption) == ("pending", media_id, "Taj Mahal")
    with pytest.raises(grpc.aio.AioRpcError) as not_ready:
        async for _ in stack.stub.GetMessageMedia(messaging_pb2.GetMessageMediaRequest(message_id=message_id),
                                                  metadata=user):
            pass
    assert not_ready.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "MEDIA_NOT_READY" in str(not_ready.value.details()) + str(not_ready.value.trailing_metadata())

    job = await work_until_done(stack, owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("done", 1)
    assert ("GET", f"/v21.0/{media_id}") in stack.graph.requests and tenant in stack.credentials.calls
    stored = stack.media_root / tenant / message_id
    assert stored.read_bytes() == content
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".tmp")]

    ready = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user)
    assert (ready.media.status, ready.media.size, ready.media.mime_type) == ("ready", len(content), "image/jpeg")
    chunks = [chunk async for chunk in stack.stub.GetMessageMedia(
        messaging_pb2.GetMessageMediaRequest(message_id=message_id), metadata=user)]
    assert [len(chunk.data) for chunk in chunks] == [CHUNK, CHUNK, 5]
    assert b"".join(chunk.data for chunk in chunks) == content
    assert (chunks[0].mime_type, chunks[0].size) == ("image/jpeg", len(content))

    updates = await as_tenant(owner_db, tenant, "SELECT payload FROM outbox WHERE headers->>'event-type' = "
                                                "'message.updated'")
    [update] = [json.loads(bytes(row["payload"]))["data"] for row in updates]
    assert update["id"] == message_id and update["media"]["status"] == "ready"
    assert update["media"]["size"] == len(content)


async def test_another_tenants_user_gets_not_found(stack, delivery, owner_db, issuer, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, _ = await receive_image(stack, delivery, owner_db, tenant, b"secret picture")
    await work_until_done(stack, owner_db, tenant, message_id, eventually)
    stranger = auth(issuer.user_token(user_id="agent", tenant_id=str(uuid.uuid4())))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in stack.stub.GetMessageMedia(messaging_pb2.GetMessageMediaRequest(message_id=message_id),
                                                  metadata=stranger):
            pass
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        async for _ in stack.stub.GetMessageMedia(messaging_pb2.GetMessageMediaRequest(message_id=message_id)):
            pass
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_sha256_mismatch_is_retried_then_failed_and_never_stored(
        stack, delivery, owner_db, issuer, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, _ = await receive_image(stack, delivery, owner_db, tenant, b"tampered bytes",
                                        sha256="m04pFf2ERdaopTyFkGPA0+bX3i+YY2dYgVFwOgDLSDI=")
    job = await work_until_done(stack, owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("failed", 5) and "sha256" in job["last_error"]
    folder = stack.media_root / tenant
    assert not (folder / message_id).exists()
    assert not folder.exists() or list(folder.iterdir()) == []  # no temporary file left behind either
    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))
    failed = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user)
    assert failed.media.status == "failed" and "sha256" in failed.media.error
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in stack.stub.GetMessageMedia(messaging_pb2.GetMessageMediaRequest(message_id=message_id),
                                                  metadata=user):
            pass
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_transient_graph_errors_are_retried_with_backoff(stack, delivery, owner_db, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, _ = await receive_image(stack, delivery, owner_db, tenant, b"eventually here", failures=2)
    job = await work_until_done(stack, owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("done", 3)
    assert (stack.media_root / tenant / message_id).read_bytes() == b"eventually here"


async def test_media_jobs_are_isolated_per_tenant(database, owner_db) -> None:
    """The app role sees no job without its tenant (jobs of the tests above exist); the claim function is the only
    cross-tenant read, and it returns nothing but job ids and tenants."""
    assert await owner_db.fetchval("SELECT count(*) FROM pg_class WHERE relname = 'media_jobs'") == 1
    connection = await asyncpg.connect(database.app_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await connection.fetchval("SELECT count(*) FROM media_jobs") == 0
        claimed = await connection.fetch("SELECT * FROM claim_media_jobs(10, 300)")
        assert all(set(row.keys()) == {"job_id", "tenant_id"} for row in claimed)
    finally:
        await connection.close()
