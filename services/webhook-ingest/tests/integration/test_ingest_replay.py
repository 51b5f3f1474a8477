"""The operator's replay against real PostgreSQL and Kafka: a delivery accepted over HTTP and recorded from the
topic is republished by `python -m webhook_ingest_service.replay` exactly as the original record (same key, delivery
id, tenant, phone number id, received time and payload; header replayed: true); filters, paging and --dry-run;
the SECURITY DEFINER read keeps row-level security intact."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from eva_common.kafka.consumer import ConsumedRecord
from eva_events.envelope import EventEnvelope
from eva_testing.db import TestDatabase, rls_problems
from eva_testing.infra import TestInfra
from eva_testing.kafka import create_topics, unique_topic
from pydantic import SecretStr
from webhook_ingest_service.handlers import received_handler
from webhook_ingest_service.models import DeliveryState
from webhook_ingest_service.replay import run_replay
from webhook_ingest_service.replaying import ReplayRequest, ReplayState
from webhook_ingest_service.repository import UnroutedDelivery, WebhookEventRepository
from webhook_ingest_service.settings import Settings

pytestmark = pytest.mark.integration

Signer = Callable[[bytes, str], str]
HOUR = timedelta(hours=1)


def header(record: Any, name: str) -> str | None:
    value = dict(record.headers).get(name)
    return value.decode() if value is not None else None


def settings_for(database: TestDatabase, infra: TestInfra, topic: str) -> Settings:
    return Settings(database_url=database.app_url, kafka_bootstrap=infra.kafka_bootstrap, webhooks_topic=topic,
                    service_client_secret=SecretStr("replay-test-service-secret-0123456789"))


async def store(repository: WebhookEventRepository, *, tenant: str, received_at: datetime,
                state: DeliveryState = DeliveryState.RECEIVED, wamid: str | None = None) -> str:
    delivery_id = str(uuid.uuid4())
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "waba-r", "changes": [{"field": "messages",
               "value": {"metadata": {"phone_number_id": f"pn-{tenant}"},
                         "messages": [{"id": wamid or f"wamid.{delivery_id}", "type": "text",
                                       "text": {"body": "olá ☀"}}]}}]}]}
    assert await repository.record_received(delivery_id=delivery_id, tenant_id=tenant, phone_number_id=f"pn-{tenant}",
                                            received_at=received_at, payload=payload)
    if state is not DeliveryState.RECEIVED:
        await repository.record_outcome(delivery_id=delivery_id, tenant_id=tenant, state=state, messages=1,
                                        statuses=0, detail=None, occurred_at=received_at)
    return delivery_id


async def test_cli_republishes_an_accepted_delivery_exactly_as_the_original(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, tenant_servicer: Any, sign: Signer,
    repository: WebhookEventRepository, database: TestDatabase, infra: TestInfra,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    number = f"pn-{uuid.uuid4().hex[:10]}"
    tenant_servicer.add(number, tenant_id=tenant, app_secret="replay-secret", verify_token=f"v-{number}")
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "waba-1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": number},
        "messages": [{"from": "16505551234", "id": f"wamid.{number}", "timestamp": "1749416383", "type": "text",
                      "text": {"body": "caf\u00e9"}}]}}]}]}, separators=(",", ":")).encode()
    response = await client.post("/webhooks/whatsapp", content=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Hub-Signature-256": sign(body, "replay-secret")})
    assert response.status_code == 200, response.text
    [delivery_id] = response.json()["deliveryIds"]
    [original] = [r for r in await read_topic(ingest_app.topic) if header(r, "delivery-id") == delivery_id]
    # the recorder's own handler stores it (as the running service's recorder consumer does)
    await received_handler(log=repository)(ConsumedRecord(
        topic=original.topic, partition=original.partition, offset=original.offset, key=original.key,
        value=original.value, headers={k: v.decode() for k, v in original.headers}, timestamp_ms=original.timestamp))
    # ... and its messages get lost downstream (a bug): the operator replays the range
    now = datetime.now(UTC)
    env = {**os.environ, "EVA_DATABASE_URL": database.app_url, "EVA_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
           "EVA_WEBHOOKS_TOPIC": ingest_app.topic, "EVA_ENVIRONMENT": "test", "EVA_LOG_LEVEL": "WARNING",
           "EVA_SERVICE_CLIENT_SECRET": "replay-test-service-secret-0123456789"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webhook_ingest_service.replay", "--from", (now - HOUR).isoformat(),
        "--to", (now + HOUR).isoformat().replace("+00:00", "Z"), "--tenant", tenant, "--state", "received",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {"matched": 1, "published": 1}

    copies = [r for r in await read_topic(ingest_app.topic) if header(r, "delivery-id") == delivery_id]
    assert len(copies) == 2
    replayed = next(r for r in copies if header(r, "replayed") == "true")
    assert header(original, "replayed") is None
    assert replayed.key == original.key == number.encode()
    first, again = EventEnvelope.from_bytes(original.value), EventEnvelope.from_bytes(replayed.value)
    assert (again.type, again.tenant_id) == (first.type, first.tenant_id) == ("webhook.received", tenant)
    assert again.data == first.data  # delivery id, phone number id, received time and payload, byte for byte
    assert header(replayed, "tenant-id") == tenant and header(replayed, "event-type") == "webhook.received"


async def test_filters_paging_and_dry_run(
    repository: WebhookEventRepository, database: TestDatabase, infra: TestInfra, read_topic: Any,
) -> None:
    tenant_a, tenant_b = f"t-a-{uuid.uuid4().hex[:8]}", f"t-b-{uuid.uuid4().hex[:8]}"
    base = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    failed_a = [await store(repository, tenant=tenant_a, received_at=base + timedelta(seconds=i),
                            state=DeliveryState.FAILED) for i in range(5)]
    processed_a = await store(repository, tenant=tenant_a, received_at=base, state=DeliveryState.PROCESSED)
    failed_b = await store(repository, tenant=tenant_b, received_at=base + timedelta(seconds=2),
                           state=DeliveryState.FAILED)
    await store(repository, tenant=tenant_a, received_at=base + 2 * HOUR, state=DeliveryState.FAILED)  # out of range
    await repository.record_unrouted([UnroutedDelivery(delivery_id=str(uuid.uuid4()), routing_key="pn-nobody",
                                                        received_at=base, payload={"entry": []}, detail="x")])
    topic = unique_topic("wa-replay")
    await create_topics(infra.kafka_bootstrap, topic)
    settings = settings_for(database, infra, topic)
    window = {"received_from": base - timedelta(minutes=1), "received_to": base + HOUR}

    dry = await run_replay(settings, ReplayRequest(**window, state=ReplayState.FAILED, dry_run=True))
    assert (dry.matched, dry.published) == (6, 0)
    assert await read_topic(topic) == []

    only_a = await run_replay(settings, ReplayRequest(**window, tenant_id=tenant_a, state=ReplayState.FAILED))
    assert (only_a.matched, only_a.published) == (5, 5)
    records = await read_topic(topic)
    assert sorted(header(r, "delivery-id") or "" for r in records) == sorted(failed_a)
    assert {header(r, "tenant-id") for r in records} == {tenant_a}
    assert all(header(r, "replayed") == "true" for r in records)
    # oldest first (one key: one partition, in order)
    assert [header(r, "delivery-id") for r in records] == failed_a

    everything = await run_replay(settings, ReplayRequest(**window))
    assert everything.matched == everything.published == 7  # unrouted and out-of-range rows are never replayed
    replayed_ids = {header(r, "delivery-id") for r in await read_topic(topic)}
    assert replayed_ids == {*failed_a, processed_a, failed_b}


async def test_replay_paging_visits_every_row_once(repository: WebhookEventRepository) -> None:
    from eva_testing.kafka import RecordingPublisher
    from webhook_ingest_service.replaying import DeliveryReplayer

    tenant = f"t-p-{uuid.uuid4().hex[:8]}"
    same_time = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)  # ties on received_at are broken by delivery id
    stored = {await store(repository, tenant=tenant, received_at=same_time) for _ in range(7)}
    publisher = RecordingPublisher()
    replayer = DeliveryReplayer(source=repository, publisher=publisher, topic="unused", page_size=3)
    summary = await replayer.replay(ReplayRequest(received_from=same_time, received_to=same_time + HOUR,
                                                  tenant_id=tenant))
    assert (summary.matched, summary.published) == (7, 7)
    ids = [headers["delivery-id"] for _, _, _, headers in publisher.records]
    assert len(ids) == 7 and set(ids) == stored


async def test_replay_read_keeps_row_level_security(
    repository: WebhookEventRepository, database: TestDatabase, infra: TestInfra,
) -> None:
    tenant = f"t-s-{uuid.uuid4().hex[:8]}"
    delivery_id = await store(repository, tenant=tenant, received_at=datetime.now(UTC))
    assert await rls_problems(database.owner_dsn, infra.app_user) == []
    app = await asyncpg.connect(database.app_url.replace("postgresql+asyncpg://", "postgresql://"))
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        function = await owner.fetchrow(
            "SELECT prosecdef, pg_get_userbyid(proowner) AS owner, "
            "has_function_privilege($1, p.oid, 'EXECUTE') AS app_may_call, "
            "has_function_privilege('public', p.oid, 'EXECUTE') AS anyone_may_call "
            "FROM pg_proc p WHERE proname = 'webhook_replay_page'", infra.app_user)
        assert function["prosecdef"] and function["owner"] == infra.owner_user
        assert function["app_may_call"] and not function["anyone_may_call"]
        # the app role sees no tenant's row with no tenant set, even naming the replay role (its policy is the
        # owner's alone); the owner sees none without it (outside the function)
        async with app.transaction():
            await app.execute("SELECT set_config('app.role', 'webhook-replay', true)")
            assert await app.fetch("SELECT 1 FROM webhook_events WHERE delivery_id = $1", delivery_id) == []
            assert await app.execute("UPDATE webhook_events SET state = 'failed' WHERE delivery_id = $1",
                                     delivery_id) == "UPDATE 0"
        assert await owner.fetch("SELECT 1 FROM webhook_events WHERE delivery_id = $1", delivery_id) == []
        for connection in (app, owner):
            # and the function leaves the setting as it found it
            async with connection.transaction():
                await connection.fetch("SELECT * FROM webhook_replay_page(now() - interval '1 day', now(), NULL, NULL, "
                                       "NULL, NULL, 10)")
                assert await connection.fetchval("SELECT current_setting('app.role', true)") in ("", None)
        async with app.transaction():
            rows = await app.fetch("SELECT delivery_id FROM webhook_replay_page(now() - interval '1 day', "
                                   "now() + interval '1 minute', $1, NULL, NULL, NULL, 10)", tenant)
        assert [row["delivery_id"] for row in rows] == [delivery_id]
    finally:
        await app.close()
        await owner.close()
