"""The real HTTP app under uvicorn, driven with httpx, against real Kafka, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eva_events.envelope import EventEnvelope
from eva_testing.infra import free_port
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration

Signer = Callable[[bytes, str], str]
CAP = 3_145_728


@pytest.fixture(scope="module", autouse=True)
def tenants(tenant_servicer: Any, vector_phone_number_id: str, vector_secret: str) -> None:
    tenant_servicer.add(vector_phone_number_id, tenant_id="t-vector", app_secret=vector_secret,
                        verify_token="hotel-verify-token")
    tenant_servicer.add("pn-own-a", tenant_id="t-a", app_secret="shared-app-secret", verify_token="token-a")
    tenant_servicer.add("pn-own-b", tenant_id="t-b", app_secret="shared-app-secret", verify_token="token-b")
    tenant_servicer.add("pn-platform", tenant_id="t-platform", app_secret="", verify_token="token-p")


def delivery(*changes: tuple[str, str, str]) -> bytes:
    """One entry per (waba, phone number id, wamid)."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": waba, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": pn},
            "messages": [{"from": "16505551234", "id": wamid, "timestamp": "1749416383", "type": "text",
                          "text": {"body": "hello"}}]}}]}
        for waba, pn, wamid in changes
    ]}, separators=(",", ":")).encode()


def headers(signature: str | None) -> dict[str, str]:
    result = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
    if signature is not None:
        result["X-Hub-Signature-256"] = signature
    return result


async def count_rows(engine: AsyncEngine) -> int:
    """Rows the HTTP path wrote (it writes only unrouted rows; pass the owner's engine: only it sees them)."""
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT count(*) FROM webhook_events"))).scalar_one())


def by_delivery(records: list[Any], delivery_ids: list[str]) -> list[Any]:
    """The records carrying these delivery ids (partitions are read one after another, not in time order)."""
    wanted = set(delivery_ids)
    return [r for r in records if dict(r.headers).get("delivery-id", b"").decode() in wanted]


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= set(body)


async def test_reference_vector_is_acknowledged_after_exactly_one_kafka_record(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, vector_body: bytes, vector_signature: str,
    vector_phone_number_id: str,
) -> None:
    before = len(await read_topic(ingest_app.topic))
    response = await client.post("/webhooks/whatsapp", content=vector_body, headers=headers(vector_signature))
    assert response.status_code == 200, response.text
    delivery_ids = response.json()["deliveryIds"]
    assert len(delivery_ids) == 1

    after = await read_topic(ingest_app.topic)
    assert len(after) - before == 1
    [record] = by_delivery(after, delivery_ids)
    assert record.key == vector_phone_number_id.encode()
    event = EventEnvelope.from_bytes(record.value)
    assert event.type == "webhook.received" and event.tenant_id == "t-vector"
    assert event.data["deliveryId"] == delivery_ids[0]
    assert event.data["payload"] == json.loads(vector_body)
    record_headers = {key: value.decode() for key, value in record.headers}
    assert record_headers["event-id"] == event.id and record_headers["tenant-id"] == "t-vector"


async def test_forged_signature_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, owner_engine: AsyncEngine, vector_body: bytes,
    sign: Signer,
) -> None:
    before_records, before_rows = len(await read_topic(ingest_app.topic)), await count_rows(owner_engine)
    for signature in (sign(vector_body, "not-the-app-secret"), None, "sha256=xyz", "sha1=" + "0" * 40):
        response = await client.post("/webhooks/whatsapp", content=vector_body, headers=headers(signature))
        assert_problem(response, 401, "SIGNATURE_INVALID")
    assert len(await read_topic(ingest_app.topic)) == before_records
    assert await count_rows(owner_engine) == before_rows


async def test_declared_body_over_the_cap_is_refused_with_413(client: httpx.AsyncClient, sign: Signer) -> None:
    body = b"{" + b" " * (CAP - 1) + b"}"
    assert len(body) == CAP + 1
    response = await client.post("/webhooks/whatsapp", content=body,
                                 headers=headers(sign(body, "test_app_secret")))
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_chunked_body_growing_over_the_cap_is_refused_with_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(CAP // 65536 + 2):
            yield b" " * 65536

    response = await client.post("/webhooks/whatsapp", content=chunks(), headers=headers("sha256=" + "0" * 64))
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_malformed_json_is_a_bad_request(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, owner_engine: AsyncEngine, sign: Signer
) -> None:
    before_records, before_rows = len(await read_topic(ingest_app.topic)), await count_rows(owner_engine)
    body = b'{"object":"whatsapp_business_account","entry":[{"id":"1",'
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers(sign(body, "whatever")))
    assert_problem(response, 400, "MALFORMED_PAYLOAD")
    assert len(await read_topic(ingest_app.topic)) == before_records
    assert await count_rows(owner_engine) == before_rows


async def test_three_megabyte_delivery_is_acknowledged_and_in_kafka(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, sign: Signer, vector_secret: str,
    vector_phone_number_id: str,
) -> None:
    template = delivery(("102290129340398", vector_phone_number_id, "wamid.BIG"))
    filler = "x" * (CAP - len(template) - 16)
    body = template.replace(b'"hello"', json.dumps(filler).encode())
    assert CAP - 64 < len(body) <= CAP
    before = len(await read_topic(ingest_app.topic))

    response = await client.post("/webhooks/whatsapp", content=body, headers=headers(sign(body, vector_secret)))

    assert response.status_code == 200, response.text
    after = await read_topic(ingest_app.topic)
    assert len(after) - before == 1
    [record] = by_delivery(after, response.json()["deliveryIds"])
    event = EventEnvelope.from_bytes(record.value)
    message = event.data["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["id"] == "wamid.BIG" and message["text"]["body"] == filler


async def test_delivery_for_two_tenants_is_split_and_unowned_numbers_are_kept_aside(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, engine: AsyncEngine, owner_engine: AsyncEngine,
    sign: Signer,
) -> None:
    body = delivery(("waba-a", "pn-own-a", "wamid.A"), ("waba-b", "pn-own-b", "wamid.B"),
                    ("waba-z", "pn-nobody", "wamid.Z"))
    before = len(await read_topic(ingest_app.topic))
    response = await client.post("/webhooks/whatsapp", content=body,
                                 headers=headers(sign(body, "shared-app-secret")))
    assert response.status_code == 200, response.text
    after = await read_topic(ingest_app.topic)
    assert len(after) - before == 2
    records = by_delivery(after, response.json()["deliveryIds"])
    by_tenant = {EventEnvelope.from_bytes(record.value).tenant_id: record for record in records}
    assert set(by_tenant) == {"t-a", "t-b"}
    for tenant_id, wamid in (("t-a", "wamid.A"), ("t-b", "wamid.B")):
        payload = EventEnvelope.from_bytes(by_tenant[tenant_id].value).data["payload"]
        assert [c["value"]["messages"][0]["id"] for e in payload["entry"] for c in e["changes"]] == [wamid]
    [unrouted_id] = response.json()["unroutedIds"]
    select = sa.text("SELECT state, tenant_id, phone_number_id, payload FROM webhook_events WHERE delivery_id = :id")
    async with engine.connect() as connection:  # the app role: an unrouted row belongs to no tenant it can set
        assert (await connection.execute(select, {"id": unrouted_id})).first() is None
    async with owner_engine.connect() as connection:
        row = (await connection.execute(select, {"id": unrouted_id})).one()
    assert row.state == "unrouted" and row.tenant_id is None and row.phone_number_id == "pn-nobody"
    assert row.payload["entry"][0]["id"] == "waba-z"


async def test_platform_app_delivery_verifies_with_the_platform_secret(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, sign: Signer, platform_app_secret: str
) -> None:
    body = delivery(("waba-p", "pn-platform", "wamid.P"))
    before = len(await read_topic(ingest_app.topic))
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers(sign(body, platform_app_secret)))
    assert response.status_code == 200, response.text
    after = await read_topic(ingest_app.topic)
    assert len(after) - before == 1
    [record] = by_delivery(after, response.json()["deliveryIds"])
    assert EventEnvelope.from_bytes(record.value).tenant_id == "t-platform"


@pytest.mark.parametrize("token", ["platform-verify-token", "hotel-verify-token"])
async def test_handshake_echoes_the_challenge_verbatim(client: httpx.AsyncClient, token: str) -> None:
    for challenge in ("abc-123", "1158201444"):
        response = await client.get("/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": challenge})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.content == challenge.encode()


async def test_handshake_with_wrong_token_or_mode_is_forbidden(client: httpx.AsyncClient) -> None:
    for mode, token in (("subscribe", "wrong-token"), ("unsubscribe", "platform-verify-token")):
        response = await client.get("/webhooks/whatsapp", params={
            "hub.mode": mode, "hub.verify_token": token, "hub.challenge": "abc-123"})
        assert_problem(response, 403, "VERIFY_TOKEN_INVALID")
        assert b"abc-123" not in response.content


async def test_handshake_without_parameters_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.challenge": "abc"})
    assert_problem(response, 400, "HANDSHAKE_INCOMPLETE")


async def test_unreachable_kafka_answers_503_within_the_deadline(
    start_ingest: Any, vector_body: bytes, vector_signature: str
) -> None:
    async with start_ingest(kafka_bootstrap=f"127.0.0.1:{free_port()}", wait_for_kafka=False) as app, \
            httpx.AsyncClient(base_url=app.base_url, timeout=10) as http_client:
        started = time.perf_counter()
        response = await http_client.post("/webhooks/whatsapp", content=vector_body,
                                          headers=headers(vector_signature))
        elapsed = time.perf_counter() - started
        assert_problem(response, 503, "UNAVAILABLE")
        assert response.headers["retry-after"] == "5"
        assert elapsed < 2.5  # never longer than the acknowledgement deadline (a refused connection fails at once)
        ready = await http_client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"] != "ok"


async def test_unverifiable_requests_are_rate_limited_but_valid_deliveries_are_not(
    start_ingest: Any, read_topic: Any, vector_body: bytes, vector_signature: str, sign: Signer
) -> None:
    async with start_ingest(unverified_limit=2) as app, \
            httpx.AsyncClient(base_url=app.base_url, timeout=10) as http_client:
        forged = headers(sign(vector_body, "forged"))
        for _ in range(2):
            assert_problem(await http_client.post("/webhooks/whatsapp", content=vector_body, headers=forged),
                           401, "SIGNATURE_INVALID")
        limited = await http_client.post("/webhooks/whatsapp", content=vector_body, headers=forged)
        assert_problem(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        valid = await http_client.post("/webhooks/whatsapp", content=vector_body, headers=headers(vector_signature))
        assert valid.status_code == 200
        assert len(await read_topic(app.topic)) == 1


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok"}
    metrics = (await client.get("/metrics")).text
    assert 'eva_webhook_deliveries_total{outcome="accepted"}' in metrics
    assert "eva_webhook_kafka_ack_seconds_bucket" in metrics


async def test_concurrent_deliveries_are_each_acknowledged(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, vector_body: bytes, vector_signature: str
) -> None:
    before = len(await read_topic(ingest_app.topic))
    responses = await asyncio.gather(*(
        client.post("/webhooks/whatsapp", content=vector_body, headers=headers(vector_signature)) for _ in range(20)))
    assert [response.status_code for response in responses] == [200] * 20
    assert len(await read_topic(ingest_app.topic)) - before == 20
