"""The delivery log in batches: one transaction writes the deliveries and outcomes of several tenants, each row under
its own tenant (row-level security), the first copy of a delivery wins for its payload and the last outcome for its
state; the batch handlers, called directly or by a real ConsumerLoop, leave exactly the rows the per-record handlers
leave."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from eva_common.kafka.consumer import BatchHandler, ConsumedRecord, ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_events.envelope import EventEnvelope
from eva_events.webhook import WEBHOOK_PROCESSED, WEBHOOK_RECEIVED, WebhookProcessed, WebhookReceived
from eva_testing.db import TestDatabase
from eva_testing.infra import TestInfra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from eva_testing.waiting import eventually
from webhook_ingest_service.handlers import (
    outcome_batch_handler,
    outcome_handler,
    received_batch_handler,
    received_handler,
)
from webhook_ingest_service.models import DeliveryState
from webhook_ingest_service.repository import DeliveryOutcome, ReceivedDelivery, WebhookEventRepository

pytestmark = pytest.mark.integration

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
OCCURRED_AT = datetime(2026, 3, 1, 12, 0, 5, 456000, tzinfo=UTC)
COLUMNS = "delivery_id, tenant_id, phone_number_id, received_at, state, payload, messages, statuses, detail"


@pytest.fixture
async def app(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The app role, as the services connect (row-level security applies)."""
    connection = await asyncpg.connect(database.app_dsn)
    yield connection
    await connection.close()


async def rows_seen(app: asyncpg.Connection, ids: Sequence[str], tenant: str | None) -> dict[str, dict[str, Any]]:
    """The rows among `ids` the app role sees with `tenant` set (or none)."""
    async with app.transaction():
        if tenant is not None:
            await app.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        rows = await app.fetch(f"SELECT {COLUMNS} FROM webhook_events WHERE delivery_id = ANY($1::text[])", list(ids))
    return {row["delivery_id"]: {**row, "payload": row["payload"] and json.loads(row["payload"])} for row in rows}


def received(delivery_id: str, tenant: str, copy: int) -> ReceivedDelivery:
    return ReceivedDelivery(delivery_id=delivery_id, tenant_id=tenant, phone_number_id=f"pn-{tenant}",
                            received_at=RECEIVED_AT, payload={"entry": [], "copy": copy})


def outcome(delivery_id: str, tenant: str, state: DeliveryState, *, messages: int = 0, statuses: int = 0,
            detail: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(delivery_id=delivery_id, tenant_id=tenant, state=state, messages=messages,
                           statuses=statuses, detail=detail, occurred_at=OCCURRED_AT)


async def test_one_batch_writes_several_tenants_rows_each_under_its_own_tenant(
    repository: WebhookEventRepository, app: asyncpg.Connection
) -> None:
    tenant_a, tenant_b = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    d1, d2, d3, early = (str(uuid.uuid4()) for _ in range(4))
    ids = [d1, d2, d3, early]
    # an outcome that came before its delivery record (a row without payload yet)
    await repository.record_outcomes([outcome(early, tenant_a, DeliveryState.PROCESSED, messages=1)])

    batch = [received(d1, tenant_a, 1), received(d2, tenant_b, 1), received(d1, tenant_a, 2),
             received(d3, tenant_a, 1), received(early, tenant_a, 1)]
    assert await repository.record_received_many(batch) == 4  # d1 once; the early row filled in
    assert await repository.record_received_many(batch) == 0  # consumed again: nothing written

    assert await rows_seen(app, ids, None) == {}  # no tenant: no row
    seen_a = await rows_seen(app, ids, tenant_a)
    seen_b = await rows_seen(app, ids, tenant_b)
    assert set(seen_a) == {d1, d3, early} and set(seen_b) == {d2}
    assert all(row["tenant_id"] == tenant_a for row in seen_a.values())
    assert seen_b[d2]["tenant_id"] == tenant_b and seen_b[d2]["phone_number_id"] == f"pn-{tenant_b}"
    assert seen_a[d1]["payload"] == {"entry": [], "copy": 1}  # the first copy wins
    assert seen_a[d1]["state"] == DeliveryState.RECEIVED and seen_a[d1]["received_at"] == RECEIVED_AT
    assert (seen_a[early]["state"], seen_a[early]["messages"]) == (DeliveryState.PROCESSED, 1)
    assert seen_a[early]["payload"] == {"entry": [], "copy": 1} and seen_a[early]["received_at"] == RECEIVED_AT

    await repository.record_outcomes([
        outcome(d1, tenant_a, DeliveryState.PROCESSED, messages=2),
        outcome(d2, tenant_b, DeliveryState.FAILED, statuses=1, detail="unknown wamid parked"),
        outcome(d1, tenant_a, DeliveryState.FAILED, statuses=3, detail="the last word"),
    ])
    seen_a = await rows_seen(app, ids, tenant_a)
    seen_b = await rows_seen(app, ids, tenant_b)
    assert set(seen_a) == {d1, d3, early} and set(seen_b) == {d2}
    assert (seen_a[d1]["state"], seen_a[d1]["messages"], seen_a[d1]["statuses"], seen_a[d1]["detail"]) == (
        DeliveryState.FAILED, 0, 3, "the last word")  # the last outcome of a delivery wins
    assert seen_a[d1]["payload"] == {"entry": [], "copy": 1}
    assert (seen_b[d2]["state"], seen_b[d2]["statuses"], seen_b[d2]["detail"]) == (
        DeliveryState.FAILED, 1, "unknown wamid parked")
    assert seen_a[d3]["state"] == DeliveryState.RECEIVED  # no outcome: untouched


@dataclass
class Scenario:
    """One set of deliveries of two tenants, as the two topics carry them (fresh ids for every run)."""

    tenants: dict[str, str]  # label -> tenant id
    deliveries: dict[str, str]  # label -> delivery id
    received: list[EventEnvelope]
    outcomes: list[EventEnvelope]

    @classmethod
    def new(cls) -> Scenario:
        tenants = {label: f"t-{uuid.uuid4()}" for label in ("A", "B")}
        deliveries = {label: str(uuid.uuid4()) for label in ("d1", "d2", "d3", "d4")}

        def delivery(label: str, tenant: str, copy: int) -> EventEnvelope:
            data = WebhookReceived(delivery_id=deliveries[label], phone_number_id=f"pn-{tenant}",
                                   received_at=RECEIVED_AT, payload={"entry": [], "copy": copy})
            return envelope(WEBHOOK_RECEIVED, tenants[tenant], data.model_dump(mode="json", by_alias=True))

        def processed(label: str, tenant: str, result: str, *, messages: int = 0, statuses: int = 0,
                      detail: str | None = None) -> EventEnvelope:
            data = WebhookProcessed(delivery_id=deliveries[label], outcome=result, messages=messages,
                                    statuses=statuses, detail=detail)
            return envelope(WEBHOOK_PROCESSED, tenants[tenant], data.model_dump(mode="json", by_alias=True))

        return cls(
            tenants=tenants,
            deliveries=deliveries,
            received=[delivery("d1", "A", 1), delivery("d2", "B", 1), delivery("d1", "A", 2),
                      delivery("d3", "A", 1), envelope("something.else", tenants["B"], {})],
            outcomes=[processed("d1", "A", "processed", messages=1), processed("d2", "B", "failed", detail="bad"),
                      processed("d1", "A", "failed", statuses=3, detail="late"),
                      processed("d4", "B", "processed", messages=2)],  # d4: an outcome with no delivery record
        )

    async def rows(self, app: asyncpg.Connection) -> dict[str, dict[str, Any]]:
        """Every row of the scenario as its tenant sees it, ids replaced by their labels (comparable across runs);
        fails when a tenant sees a row of the other."""
        labels = {value: label for label, value in {**self.tenants, **self.deliveries}.items()}
        ids = list(self.deliveries.values())
        assert await rows_seen(app, ids, None) == {}
        found: dict[str, dict[str, Any]] = {}
        for tenant in self.tenants.values():
            for delivery_id, row in (await rows_seen(app, ids, tenant)).items():
                assert row["tenant_id"] == tenant
                found[labels[delivery_id]] = {**row, "delivery_id": labels[delivery_id], "tenant_id": labels[tenant],
                                              "phone_number_id": row["phone_number_id"] and "pn"}
        return found


def envelope(event_type: str, tenant_id: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(type=event_type, tenant_id=tenant_id, occurred_at=OCCURRED_AT, data=data)


def consumed(topic: str, events: Sequence[EventEnvelope]) -> list[ConsumedRecord]:
    return [ConsumedRecord(topic=topic, partition=0, offset=offset, key=event.data.get("deliveryId", "").encode(),
                           value=event.to_bytes(), headers={}, timestamp_ms=0) for offset, event in enumerate(events)]


EXPECTED = {
    "d1": {"delivery_id": "d1", "tenant_id": "A", "phone_number_id": "pn", "received_at": RECEIVED_AT,
           "state": "failed", "payload": {"entry": [], "copy": 1}, "messages": 0, "statuses": 3, "detail": "late"},
    "d2": {"delivery_id": "d2", "tenant_id": "B", "phone_number_id": "pn", "received_at": RECEIVED_AT,
           "state": "failed", "payload": {"entry": [], "copy": 1}, "messages": 0, "statuses": 0, "detail": "bad"},
    "d3": {"delivery_id": "d3", "tenant_id": "A", "phone_number_id": "pn", "received_at": RECEIVED_AT,
           "state": "received", "payload": {"entry": [], "copy": 1}, "messages": 0, "statuses": 0, "detail": None},
    "d4": {"delivery_id": "d4", "tenant_id": "B", "phone_number_id": None, "received_at": OCCURRED_AT,
           "state": "processed", "payload": None, "messages": 2, "statuses": 0, "detail": None},
}


async def test_the_batch_handlers_leave_the_rows_the_per_record_handlers_leave(
    repository: WebhookEventRepository, app: asyncpg.Connection
) -> None:
    one_by_one = Scenario.new()
    on_received, on_outcome = received_handler(log=repository), outcome_handler(log=repository)
    for record in consumed("wa.webhooks.v1", one_by_one.received):
        await on_received(record)
    for record in consumed("webhook.outcomes.v1", one_by_one.outcomes):
        await on_outcome(record)

    batched = Scenario.new()
    await received_batch_handler(log=repository)(consumed("wa.webhooks.v1", batched.received))
    await outcome_batch_handler(log=repository)(consumed("webhook.outcomes.v1", batched.outcomes))

    assert await one_by_one.rows(app) == EXPECTED
    assert await batched.rows(app) == EXPECTED


class Batches:
    """Wraps a batch handler; counts what it handled and lets a test wait for it."""

    def __init__(self, inner: BatchHandler) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    async def __call__(self, records: Sequence[ConsumedRecord]) -> None:
        await self.inner(records)
        self.sizes.append(len(records))

    async def handled(self, count: int) -> None:
        async def enough() -> bool:
            return sum(self.sizes) >= count

        await eventually(enough, timeout=30)


async def consume_in_batches(infra: TestInfra, topic: str, batch: Batches, count: int) -> list[ConsumedRecord]:
    """Runs a real ConsumerLoop with the batch handler until it has handled `count` records; returns what reached
    the per-record handler meanwhile."""
    singles: list[ConsumedRecord] = []

    async def single(record: ConsumedRecord) -> None:
        singles.append(record)

    loop = ConsumerLoop(bootstrap=infra.kafka_bootstrap, topics=[topic], group_id=f"test-{uuid.uuid4().hex[:8]}",
                        handler=single, batch_handler=batch, dead_letters=RecordingPublisher())
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        await batch.handled(count)
    finally:
        await loop.stop()
        await asyncio.wait_for(task, 15)
    return singles


async def test_a_real_consumer_loop_with_the_batch_handlers_leaves_the_same_rows(
    infra: TestInfra, repository: WebhookEventRepository, app: asyncpg.Connection
) -> None:
    scenario = Scenario.new()
    webhooks, outcomes = unique_topic("wa-webhooks"), unique_topic("webhook-outcomes")
    await create_topics(infra.kafka_bootstrap, webhooks, outcomes, partitions=1)
    publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="recorder-batches-test")
    await publisher.start()
    try:
        for topic, events in ((webhooks, scenario.received), (outcomes, scenario.outcomes)):
            for event in events:
                await publisher.publish_event(topic, event, key=str(event.data.get("deliveryId", "")))
    finally:
        await publisher.stop()

    steps: list[tuple[str, list[EventEnvelope], Callable[..., BatchHandler]]] = [
        (webhooks, scenario.received, received_batch_handler), (outcomes, scenario.outcomes, outcome_batch_handler)]
    for topic, events, make in steps:  # the deliveries first, then their outcomes
        batch = Batches(make(log=repository))
        singles = await consume_in_batches(infra, topic, batch, len(events))
        assert singles == []  # every record went through the batch handler
        assert max(batch.sizes) > 1, batch.sizes  # several records in one transaction
    assert await scenario.rows(app) == EXPECTED


async def test_a_bad_record_in_a_batch_is_dead_lettered_alone_and_its_batch_mates_are_logged_one_by_one(
    infra: TestInfra, repository: WebhookEventRepository, app: asyncpg.Connection
) -> None:
    scenario = Scenario.new()
    bad = envelope(WEBHOOK_RECEIVED, scenario.tenants["A"], {"deliveryId": str(uuid.uuid4())})  # no payload etc.
    events = [*scenario.received[:2], bad, *scenario.received[2:]]
    topic = unique_topic("wa-webhooks")
    await create_topics(infra.kafka_bootstrap, topic, partitions=1)
    publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="recorder-batches-test")
    await publisher.start()
    try:
        for event in events:
            await publisher.publish_event(topic, event, key="same-partition")
    finally:
        await publisher.stop()

    dead_letters = RecordingPublisher()
    batch = Batches(received_batch_handler(log=repository))
    per_record = received_handler(log=repository)
    handled_alone: list[ConsumedRecord] = []

    async def single(record: ConsumedRecord) -> None:
        await per_record(record)
        handled_alone.append(record)

    loop = ConsumerLoop(bootstrap=infra.kafka_bootstrap, topics=[topic], group_id=f"test-{uuid.uuid4().hex[:8]}",
                        handler=single, batch_handler=batch, dead_letters=dead_letters, retry_backoff_seconds=0.01)
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        async def all_accounted_for() -> bool:
            return sum(batch.sizes) + len(handled_alone) + len(dead_letters.records) >= len(events)

        await eventually(all_accounted_for, timeout=30)
    finally:
        await loop.stop()
        await asyncio.wait_for(task, 15)

    assert [(topic_, value) for topic_, _, value, _ in dead_letters.records] == [(f"{topic}.dlq", bad.to_bytes())]
    assert dead_letters.records[0][3]["x-error-type"] == "InvalidArgument"
    assert handled_alone  # the failed batch's other records went through the per-record handler
    assert bad.id not in {record.event().id for record in handled_alone}
    rows = await scenario.rows(app)
    assert set(rows) == {"d1", "d2", "d3"}
    assert rows["d1"]["payload"] == {"entry": [], "copy": 1}  # still the first copy, one by one as in a batch
    assert all(row["state"] == "received" for row in rows.values())
