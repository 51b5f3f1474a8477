"""The delivery log: consumers on wa.webhooks.v1 and webhook.outcomes.v1 write webhook_events, idempotently."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from eva_common.kafka.consumer import ConsumedRecord, ConsumerLoop, Handler
from eva_common.kafka.publisher import KafkaPublisher
from eva_events.envelope import make_event
from eva_events.webhook import WebhookProcessed
from eva_testing.infra import TestInfra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from sqlalchemy.ext.asyncio import AsyncEngine
from webhook_ingest_service.handlers import outcome_handler, received_handler
from webhook_ingest_service.models import DeliveryState
from webhook_ingest_service.repository import WebhookEventRepository

pytestmark = pytest.mark.integration


class Counting:
    """Wraps a handler and lets a test wait until it has handled n records."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.handled: list[ConsumedRecord] = []
        self.changed = asyncio.Event()

    async def __call__(self, record: ConsumedRecord) -> None:
        await self.inner(record)
        self.handled.append(record)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        async def wait() -> None:
            while len(self.handled) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def consume(infra: TestInfra, topic: str, handler: Counting, count: int) -> None:
    """Runs a real ConsumerLoop in a fresh consumer group until it has handled `count` records."""
    loop = ConsumerLoop(bootstrap=infra.kafka_bootstrap, topics=[topic], group_id=f"test-{uuid.uuid4().hex[:8]}",
                        handler=handler, dead_letters=RecordingPublisher())
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        await handler.wait_for(count)
    finally:
        await loop.stop()
        await task


async def rows_for(engine: AsyncEngine, delivery_id: str, tenant_id: str = "t-rec") -> int:
    async with engine.begin() as connection:
        await connection.execute(sa.text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant_id})
        return int((await connection.execute(
            sa.text("SELECT count(*) FROM webhook_events WHERE delivery_id = :id"), {"id": delivery_id})).scalar_one())


@pytest.fixture(scope="module", autouse=True)
def tenants(tenant_servicer: Any, vector_phone_number_id: str, vector_secret: str) -> None:
    tenant_servicer.add(vector_phone_number_id, tenant_id="t-rec", app_secret=vector_secret, verify_token="v")


async def test_recorder_writes_each_delivery_once_even_when_consumed_twice(
    infra: TestInfra, ingest_app: Any, read_topic: Any, repository: WebhookEventRepository, engine: AsyncEngine,
    vector_body: bytes, vector_signature: str, vector_phone_number_id: str,
) -> None:
    async with httpx.AsyncClient(base_url=ingest_app.base_url) as client:
        response = await client.post("/webhooks/whatsapp", content=vector_body,
                                     headers={"X-Hub-Signature-256": vector_signature})
    assert response.status_code == 200, response.text
    [delivery_id] = response.json()["deliveryIds"]
    total = len(await read_topic(ingest_app.topic))

    first = Counting(received_handler(log=repository))
    await consume(infra, ingest_app.topic, first, total)
    row = await repository.get(delivery_id, tenant_id="t-rec")
    assert row is not None
    assert row.state == DeliveryState.RECEIVED and row.tenant_id == "t-rec"
    assert row.phone_number_id == vector_phone_number_id
    assert row.payload == json.loads(vector_body)

    # the same records consumed again (another group = a redelivery after a crash or rebalance)
    second = Counting(received_handler(log=repository))
    await consume(infra, ingest_app.topic, second, total)
    assert [r.offset for r in second.handled] == [r.offset for r in first.handled]
    assert await rows_for(engine, delivery_id) == 1
    again = await repository.get(delivery_id, tenant_id="t-rec")
    assert again is not None and again.updated_at == row.updated_at  # untouched by the duplicate


async def test_outcomes_consumer_sets_the_processing_state(
    infra: TestInfra, repository: WebhookEventRepository, engine: AsyncEngine
) -> None:
    delivery_id = str(uuid.uuid4())
    await repository.record_received(delivery_id=delivery_id, tenant_id="t-rec", phone_number_id="pn",
                                     received_at=datetime.now(UTC), payload={"entry": []})
    topic = unique_topic("webhook-outcomes")
    await create_topics(infra.kafka_bootstrap, topic)
    publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="outcome-test")
    await publisher.start()
    try:
        event = make_event("webhook.processed", tenant_id="t-rec", data=WebhookProcessed(
            delivery_id=delivery_id, outcome="failed", messages=0, statuses=2, detail="unknown wamid parked"))
        await publisher.publish_event(topic, event, key=delivery_id)
        await publisher.publish_event(topic, event, key=delivery_id)  # a duplicate outcome changes nothing
    finally:
        await publisher.stop()

    await consume(infra, topic, Counting(outcome_handler(log=repository)), 2)

    row = await repository.get(delivery_id, tenant_id="t-rec")
    assert row is not None
    assert (row.state, row.statuses, row.detail) == (DeliveryState.FAILED, 2, "unknown wamid parked")
    assert row.payload == {"entry": []}
    assert await rows_for(engine, delivery_id) == 1


async def test_an_outcome_arriving_before_its_delivery_record_is_kept(repository: WebhookEventRepository) -> None:
    delivery_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await repository.record_outcome(delivery_id=delivery_id, tenant_id="t-rec", state=DeliveryState.PROCESSED,
                                    messages=1, statuses=0, detail=None, occurred_at=now)
    assert await repository.record_received(delivery_id=delivery_id, tenant_id="t-rec", phone_number_id="pn",
                                            received_at=now, payload={"entry": [1]})
    assert not await repository.record_received(delivery_id=delivery_id, tenant_id="t-rec", phone_number_id="pn",
                                                received_at=now, payload={"entry": [2]})
    row = await repository.get(delivery_id, tenant_id="t-rec")
    assert row is not None
    assert row.state == DeliveryState.PROCESSED and row.messages == 1
    assert row.payload == {"entry": [1]} and row.phone_number_id == "pn"
