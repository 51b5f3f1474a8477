"""The media job against the real simulator (eva_simulator, served over HTTP on a free port): it answers the Graph
media look-up and serves the download only with the owning number's bearer token, like Meta; its control API
stores media and can corrupt downloads (sha256 mismatch). The Graph API version the service is configured with
(EVA_WHATSAPP_API_VERSION) is the one in the paths the simulator receives."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2
from messaging_service.media_worker import MediaWorker

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


@pytest_asyncio.fixture(scope="module")
async def versioned_stack(infra, database, issuer, stack_builder, simulator, tmp_path_factory) -> AsyncIterator[Any]:
    """A messaging service whose own media worker asks the simulator over HTTP, configured with another Graph API
    version than the default."""
    async with stack_builder(infra, database, issuer, tmp_path_factory.mktemp("versioned-media"),
                             graph_transport=httpx.AsyncHTTPTransport(), whatsapp_graph_url=simulator.url,
                             whatsapp_api_version="v23.0") as built:
        yield built


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def receive_document(stack, delivery, owner_db, simulator, tenant: str, content: bytes, *,
                           phone_number_id: str | None = None) -> tuple[str, str]:
    stored = (await simulator.client.post("/_sim/media", json={
        "phoneNumberId": phone_number_id or simulator.phone_number_id, "mimeType": "application/pdf",
        "filename": "invoice.pdf",
        "contentBase64": base64.b64encode(content).decode()})).json()
    payload = copy.deepcopy(json.loads((FIXTURES / "document.json").read_text()))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.DOC{uuid.uuid4().hex}"
    message["document"].update(id=stored["id"], sha256=stored["sha256"], filename="invoice.pdf")
    await stack.messaging.processor.process(delivery(payload, tenant_id=tenant))
    [row] = await as_tenant(owner_db, tenant, "SELECT id FROM messages WHERE wamid = $1", message["id"])
    return str(row["id"]), stored["id"]


async def drive(job_worker: MediaWorker, owner_db, tenant: str, message_id: str, eventually) -> Any:
    async def probe() -> Any:
        await job_worker.run_once()
        rows = await as_tenant(owner_db, tenant, "SELECT state, attempts, last_error FROM media_jobs "
                                                 "WHERE message_id = $1", uuid.UUID(message_id))
        return rows[0] if rows and rows[0]["state"] != "pending" else None

    return await eventually(probe, timeout=20)


async def test_media_from_the_simulator_is_stored_and_streamed(
        stack, delivery, owner_db, issuer, simulator, eventually) -> None:
    tenant = str(uuid.uuid4())
    content = b"%PDF-1.4 " + bytes(range(256)) * 300  # over one 64 KiB chunk
    message_id, _ = await receive_document(stack, delivery, owner_db, simulator, tenant, content)
    async with httpx.AsyncClient(timeout=10) as http:
        job = await drive(simulator.media_worker(stack, http), owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("done", 1)
    user = (("authorization", f"Bearer {issuer.user_token(user_id='agent', tenant_id=tenant)}"),)
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user)
    assert (got.media.status, got.media.size, got.media.filename) == ("ready", len(content), "invoice.pdf")
    chunks = [c async for c in stack.stub.GetMessageMedia(
        messaging_pb2.GetMessageMediaRequest(message_id=message_id), metadata=user)]
    assert [len(c.data) for c in chunks] == [65536, len(content) - 65536]
    assert b"".join(c.data for c in chunks) == content and chunks[0].mime_type == "application/pdf"


async def test_corrupted_simulator_downloads_fail_after_retries(
        stack, delivery, owner_db, simulator, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, media_id = await receive_document(stack, delivery, owner_db, simulator, tenant, b"%PDF original")
    corrupted = await simulator.client.post(f"/_sim/media/{media_id}/corrupt", json={"corrupt": True})
    assert corrupted.status_code == 200
    async with httpx.AsyncClient(timeout=10) as http:
        job = await drive(simulator.media_worker(stack, http), owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("failed", 5) and "sha256" in job["last_error"]
    assert not (stack.media_root / tenant / message_id).exists()


async def test_a_wrong_token_is_refused_by_the_simulator_and_recorded(
        stack, delivery, owner_db, simulator, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, _ = await receive_document(stack, delivery, owner_db, simulator, tenant, b"%PDF private")
    async with httpx.AsyncClient(timeout=10) as http:
        job = await drive(simulator.media_worker(stack, http, token="EAAG-not-the-owner"), owner_db, tenant,
                          message_id, eventually)
    assert job["state"] == "failed" and "media lookup answered" in job["last_error"]
    [row] = await as_tenant(owner_db, tenant, "SELECT media FROM messages WHERE id = $1", uuid.UUID(message_id))
    assert json.loads(row["media"])["status"] == "failed"


async def test_the_configured_graph_api_version_is_the_one_the_simulator_receives(
        versioned_stack, delivery, owner_db, simulator, eventually) -> None:
    assert "parked-status-expiry" in {task.get_name() for task in versioned_stack.messaging.tasks}
    tenant = str(uuid.uuid4())
    # the stack's credentials give every tenant the token `token-<tenant>`: this tenant's number has it
    number = "1065" + str(uuid.uuid4().int)[:11]
    await simulator.add_number(number, access_token=f"token-{tenant}")
    content = b"%PDF-1.4 versioned"
    message_id, media_id = await receive_document(versioned_stack, delivery, owner_db, simulator, tenant, content,
                                                  phone_number_id=number)
    job = await drive(versioned_stack.messaging.media_worker, owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"], job["last_error"]) == ("done", 1, None)
    lookups = [path for method, path in simulator.requests if method == "GET" and path.endswith(f"/{media_id}")]
    assert lookups == [f"/v23.0/{media_id}"]
    assert versioned_stack.credentials.calls == [tenant]
