"""Kafka record handlers: the delivery log follows wa.webhooks.v1 and webhook.outcomes.v1 (thin: decode, write).

Each has a batch form (the records one fetch returned, written in one transaction: what the service runs) and a
per-record form (what the consumer loop falls back to when a batch holds a record that cannot be written, so that
record alone is retried and dead-lettered). Both writes are idempotent, so a record consumed twice (redelivery after
a crash, a rebalance) leaves one row, and each runs with the record's tenant set (row-level security). A record that
cannot be decoded, or names no tenant, raises InvalidArgument, which the consumer loop dead-letters after its
retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from eva_common.errors import InvalidArgument
from eva_common.kafka.consumer import BatchHandler, ConsumedRecord, Handler
from eva_events.envelope import EventEnvelope
from eva_events.webhook import WEBHOOK_PROCESSED, WEBHOOK_RECEIVED, WebhookProcessed, WebhookReceived
from pydantic import ValidationError

from webhook_ingest_service.models import DeliveryState
from webhook_ingest_service.repository import DeliveryOutcome, ReceivedDelivery

_OUTCOME_STATES = {"processed": DeliveryState.PROCESSED, "failed": DeliveryState.FAILED}


class DeliveryLog(Protocol):
    async def record_received(
        self, *, delivery_id: str, tenant_id: str, phone_number_id: str, received_at: datetime,
        payload: dict[str, Any],
    ) -> bool: ...

    async def record_outcome(
        self, *, delivery_id: str, tenant_id: str, state: DeliveryState, messages: int, statuses: int,
        detail: str | None, occurred_at: datetime,
    ) -> None: ...


class DeliveryBatchLog(Protocol):
    async def record_received_many(self, deliveries: Sequence[ReceivedDelivery]) -> int: ...

    async def record_outcomes(self, outcomes: Sequence[DeliveryOutcome]) -> None: ...


def decode_envelope(record: ConsumedRecord) -> EventEnvelope:
    """The record's envelope; it must name its tenant (each row is written with that tenant set, for RLS)."""
    where = f"{record.topic}/{record.partition}@{record.offset}"
    try:
        envelope = record.event()  # decoded by the ConsumerLoop; decoded here for a record built by hand
    except ValidationError as error:
        raise InvalidArgument(f"undecodable event at {where}") from error
    if not envelope.tenant_id:
        raise InvalidArgument(f"event without a tenant at {where}")
    return envelope


def received_delivery(record: ConsumedRecord) -> ReceivedDelivery | None:
    """The delivery a wa.webhooks.v1 record announces (None for another event type)."""
    envelope = decode_envelope(record)
    if envelope.type != WEBHOOK_RECEIVED:
        return None
    try:
        data = WebhookReceived.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidArgument("webhook.received without a valid WebhookReceived") from error
    return ReceivedDelivery(delivery_id=data.delivery_id, tenant_id=envelope.tenant_id,
                            phone_number_id=data.phone_number_id, received_at=data.received_at, payload=data.payload)


def delivery_outcome(record: ConsumedRecord) -> DeliveryOutcome | None:
    """The outcome a webhook.outcomes.v1 record reports (None for another event type)."""
    envelope = decode_envelope(record)
    if envelope.type != WEBHOOK_PROCESSED:
        return None
    try:
        data = WebhookProcessed.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidArgument("webhook.processed without a valid WebhookProcessed") from error
    state = _OUTCOME_STATES.get(data.outcome)
    if state is None:
        raise InvalidArgument(f"unknown webhook outcome {data.outcome!r}")
    return DeliveryOutcome(delivery_id=data.delivery_id, tenant_id=envelope.tenant_id, state=state,
                           messages=data.messages, statuses=data.statuses, detail=data.detail,
                           occurred_at=envelope.occurred_at)


def received_handler(*, log: DeliveryLog) -> Handler:
    """Logs each published delivery (state 'received')."""

    async def on_webhook_received(record: ConsumedRecord) -> None:
        delivery = received_delivery(record)
        if delivery is not None:
            await log.record_received(
                delivery_id=delivery.delivery_id, tenant_id=delivery.tenant_id,
                phone_number_id=delivery.phone_number_id, received_at=delivery.received_at,
                payload=delivery.payload)

    return on_webhook_received


def received_batch_handler(*, log: DeliveryBatchLog) -> BatchHandler:
    """Logs the published deliveries of a fetch in one transaction."""

    async def on_webhooks_received(records: Sequence[ConsumedRecord]) -> None:
        deliveries = [delivery for delivery in map(received_delivery, records) if delivery is not None]
        if deliveries:
            await log.record_received_many(deliveries)

    return on_webhooks_received


def outcome_handler(*, log: DeliveryLog) -> Handler:
    """Sets a delivery's state from messaging's webhook.processed outcome."""

    async def on_webhook_processed(record: ConsumedRecord) -> None:
        outcome = delivery_outcome(record)
        if outcome is not None:
            await log.record_outcome(
                delivery_id=outcome.delivery_id, tenant_id=outcome.tenant_id, state=outcome.state,
                messages=outcome.messages, statuses=outcome.statuses, detail=outcome.detail,
                occurred_at=outcome.occurred_at)

    return on_webhook_processed


def outcome_batch_handler(*, log: DeliveryBatchLog) -> BatchHandler:
    """Sets the outcomes of a fetch in one transaction (in the records' order: the last of a delivery wins)."""

    async def on_webhooks_processed(records: Sequence[ConsumedRecord]) -> None:
        outcomes = [outcome for outcome in map(delivery_outcome, records) if outcome is not None]
        if outcomes:
            await log.record_outcomes(outcomes)

    return on_webhooks_processed
