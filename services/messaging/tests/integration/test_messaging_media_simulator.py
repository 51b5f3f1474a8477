"""The media job against the real simulator (eva_simulator, served over HTTP on a free port): it answers the Graph
media look-up and serves the download only with the owning number's bearer token, like Meta; its control API
stores media and can corrupt downloads (sha256 mismatch)."""

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
from eva_simulator.app import create_app
from eva_simulator.server import serve_in_background
from eva_simulator.settings import Settings as SimulatorSettings
from messaging_service.media_worker import GraphMediaClient, MediaWorker

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = f"EAAG-sim-{uuid.uuid4().hex}"


class NumberToken:
    """The tenant's access token, as TenantService.GetSendingCredentials would return it."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def access_token(self, *, tenant_id: str) -> str:
        return self.token


@pytest_asyncio.fixture(scope="module")
async def simulator() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SimulatorSettings(auto_statuses=False))
    async with serve_in_background(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post("/_sim/numbers", json={
            "phoneNumberId": PHONE_NUMBER_ID, "wabaId": "102290129340398", "displayPhoneNumber": "15550783881",
            "accessToken": ACCESS_TOKEN, "appSecret": "sim-app-secret-" + uuid.uuid4().hex})
        assert answer.status_code == 200, answer.text
        yield client


def worker(stack, simulator: httpx.AsyncClient, http: httpx.AsyncClient, token: str) -> MediaWorker:
    return MediaWorker(
        sessions=stack.messaging.sessions, credentials=NumberToken(token),
        graph=GraphMediaClient(http=http, graph_url=str(simulator.base_url)), store=stack.messaging.media_store,
        events_topic=stack.events_topic, backoff_seconds=0.01)


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def receive_document(stack, delivery, owner_db, simulator: httpx.AsyncClient, tenant: str,
                           content: bytes) -> tuple[str, str]:
    stored = (await simulator.post("/_sim/media", json={
        "phoneNumberId": PHONE_NUMBER_ID, "mimeType": "application/pdf", "filename": "invoice.pdf",
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
        job = await drive(worker(stack, simulator, http, ACCESS_TOKEN), owner_db, tenant, message_id, eventually)
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
    assert (await simulator.post(f"/_sim/media/{media_id}/corrupt", json={"corrupt": True})).status_code == 200
    async with httpx.AsyncClient(timeout=10) as http:
        job = await drive(worker(stack, simulator, http, ACCESS_TOKEN), owner_db, tenant, message_id, eventually)
    assert (job["state"], job["attempts"]) == ("failed", 5) and "sha256" in job["last_error"]
    assert not (stack.media_root / tenant / message_id).exists()


async def test_a_wrong_token_is_refused_by_the_simulator_and_recorded(
        stack, delivery, owner_db, simulator, eventually) -> None:
    tenant = str(uuid.uuid4())
    message_id, _ = await receive_document(stack, delivery, owner_db, simulator, tenant, b"%PDF private")
    async with httpx.AsyncClient(timeout=10) as http:
        job = await drive(worker(stack, simulator, http, "EAAG-not-the-owner"), owner_db, tenant, message_id,
                          eventually)
    assert job["state"] == "failed" and "media lookup answered" in job["last_error"]
    [row] = await as_tenant(owner_db, tenant, "SELECT media FROM messages WHERE id = $1", uuid.UUID(message_id))
    assert json.loads(row["media"])["status"] == "failed"
