"""The messaging service configured with EVA_MEDIA_STORE=s3 on a real S3-compatible server (MinIO): the media job
downloads from the real simulator into the bucket (under the prefix), GetMessageMedia streams it back from S3, and
/readyz checks the bucket."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2
from messaging_service.s3_media_store import S3MediaStore

# The first test may wait for the one-time MinIO build (scripts/s3_server.py install).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
PREFIX = "eva-test/media"


@pytest_asyncio.fixture(scope="module")
async def s3_stack(infra, database, issuer, stack_builder, s3_bucket, s3_settings, tmp_path_factory) -> Any:
    async with stack_builder(infra, database, issuer, tmp_path_factory.mktemp("unused-media"),
                             **s3_settings(s3_bucket, media_s3_prefix=PREFIX)) as built:
        yield built


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def test_the_media_job_stores_in_s3_and_the_service_streams_it_back(
        s3_stack, delivery, owner_db, issuer, simulator, s3_client, s3_bucket, eventually) -> None:
    store = s3_stack.messaging.media_store
    assert isinstance(store, S3MediaStore) and store is s3_stack.messaging.s3_media_store
    tenant = str(uuid.uuid4())
    content = b"%PDF-1.4 " + bytes(range(256)) * 300  # over one 64 KiB chunk
    stored = (await simulator.client.post("/_sim/media", json={
        "phoneNumberId": simulator.phone_number_id, "mimeType": "application/pdf", "filename": "invoice.pdf",
        "contentBase64": base64.b64encode(content).decode()})).json()
    payload = copy.deepcopy(json.loads((FIXTURES / "document.json").read_text()))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.DOC{uuid.uuid4().hex}"
    message["document"].update(id=stored["id"], sha256=stored["sha256"], filename="invoice.pdf")
    await s3_stack.messaging.processor.process(delivery(payload, tenant_id=tenant))
    [row] = await as_tenant(owner_db, tenant, "SELECT id FROM messages WHERE wamid = $1", message["id"])
    message_id = str(row["id"])

    async with httpx.AsyncClient(timeout=10) as http:
        job_worker = simulator.media_worker(s3_stack, http)

        async def done() -> Any:
            await job_worker.run_once()
            rows = await as_tenant(owner_db, tenant, "SELECT state, attempts, last_error FROM media_jobs "
                                                     "WHERE message_id = $1", uuid.UUID(message_id))
            return rows[0] if rows and rows[0]["state"] != "pending" else None

        job = await eventually(done, timeout=20)
    assert (job["state"], job["attempts"], job["last_error"]) == ("done", 1, None)

    object_key = f"{PREFIX}/{tenant}/{message_id}"
    async with s3_client() as client:
        head = await client.head_object(Bucket=s3_bucket, Key=object_key)
    assert head["ContentLength"] == len(content)
    assert head["Metadata"]["sha256"] == base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert not any(s3_stack.media_root.iterdir())  # nothing went to the local folder

    user = (("authorization", f"Bearer {issuer.user_token(user_id='agent', tenant_id=tenant)}"),)
    got = await s3_stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user)
    assert (got.media.status, got.media.size, got.media.filename) == ("ready", len(content), "invoice.pdf")
    chunks = [c async for c in s3_stack.stub.GetMessageMedia(
        messaging_pb2.GetMessageMediaRequest(message_id=message_id), metadata=user)]
    assert [len(c.data) for c in chunks] == [65536, len(content) - 65536]
    assert b"".join(c.data for c in chunks) == content and chunks[0].mime_type == "application/pdf"


async def test_readyz_checks_the_bucket(s3_stack, s3_client, s3_bucket) -> None:
    transport = httpx.ASGITransport(app=s3_stack.messaging.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://messaging") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["media_store"] == "ok"
        # The bucket disappears (an operator's mistake): not ready any more.
        async with s3_client() as client:
            listed = await client.list_objects_v2(Bucket=s3_bucket)
            for item in listed.get("Contents", []):
                await client.delete_object(Bucket=s3_bucket, Key=item["Key"])
            await client.delete_bucket(Bucket=s3_bucket)
        try:
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["media_store"] == "down"
        finally:
            async with s3_client() as client:
                await client.create_bucket(Bucket=s3_bucket)
        assert (await http.get("/readyz")).status_code == 200
