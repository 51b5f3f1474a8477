from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eva_common.errors import InvalidArgument
from eva_common.kafka.consumer import ConsumedRecord
from eva_events.envelope import make_event
from eva_events.webhook import WebhookProcessed, WebhookReceived
from webhook_ingest_service.handlers import outcome_handler, received_handler
from webhook_ingest_service.models import DeliveryState


class FakeLog:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []

    async def record_received(self, **fields: Any) -> bool:
        self.received.append(fields)
        return True

    async def record_outcome(self, **fields: Any) -> None:
        self.outcomes.append(fields)


def record(value: bytes) -> ConsumedRecord:
    return ConsumedRecord(topic="t", partition=0, offset=7, key=b"k", value=value, headers={}, timestamp_ms=0)


async def test_received_handler_logs_the_delivery() -> None:
    log = FakeLog()
    at = datetime(2026, 11, 29, tzinfo=UTC)
    event = make_event("webhook.received", tenant_id="t-1", data=WebhookReceived(
        delivery_id="d-1", phone_number_id="pn-1", received_at=at, payload={"entry": []}))
    await received_handler(log=log)(record(event.to_bytes()))
    assert log.received == [{"delivery_id": "d-1", "tenant_id": "t-1", "phone_number_id": "pn-1",
                             "received_at": at, "payload": {"entry": []}}]


async def test_other_event_types_are_ignored() -> None:
    log = FakeLog()
    event = make_event("webhook.something_else", tenant_id="t-1", data={"x": 1})
    await received_handler(log=log)(record(event.to_bytes()))
    await outcome_handler(log=log)(record(event.to_bytes()))
    assert log.received == [] and log.outcomes == []


@pytest.mark.parametrize(("outcome", "state"), [("processed", DeliveryState.PROCESSED),
                                                ("failed", DeliveryState.FAILED)])
async def test_outcome_handler_sets_the_state(outcome: str, state: DeliveryState) -> None:
    log = FakeLog()
    event = make_event("webhook.processed", tenant_id="t-1", data=WebhookProcessed(
        delivery_id="d-1", outcome=outcome, messages=2, statuses=1, detail="ok"))
    await outcome_handler(log=log)(record(event.to_bytes()))
    on_the_wire = event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000)  # ms
    assert log.outcomes == [{"delivery_id": "d-1", "tenant_id": "t-1", "state": state, "messages": 2,
                             "statuses": 1, "detail": "ok", "occurred_at": on_the_wire}]


async def test_undecodable_records_are_refused() -> None:
    log = FakeLog()
    with pytest.raises(InvalidArgument):
        await received_handler(log=log)(record(b"not json"))
    bad_data = make_event("webhook.received", tenant_id="t-1", data={"deliveryId": "d-1"})
    with pytest.raises(InvalidArgument):
        await received_handler(log=log)(record(bad_data.to_bytes()))
    unknown = make_event("webhook.processed", tenant_id="t-1", data={"deliveryId": "d", "outcome": "maybe"})
    with pytest.raises(InvalidArgument):
        await outcome_handler(log=log)(record(unknown.to_bytes()))
    assert log.received == [] and log.outcomes == []



async def test_a_record_without_a_tenant_is_refused_before_anything_is_written() -> None:
    log = FakeLog()
    received = make_event("webhook.received", tenant_id="", data=WebhookReceived(
        delivery_id="d-1", phone_number_id="pn-1", received_at=datetime(2026, 11, 29, tzinfo=UTC), payload={}))
    processed = make_event("webhook.processed", tenant_id="", data=WebhookProcessed(
        delivery_id="d-1", outcome="processed", messages=1, statuses=0))
    with pytest.raises(InvalidArgument, match="without a tenant"):
        await received_handler(log=log)(record(received.to_bytes()))
    with pytest.raises(InvalidArgument, match="without a tenant"):
        await outcome_handler(log=log)(record(processed.to_bytes()))
    assert log.received == [] and log.outcomes == []
