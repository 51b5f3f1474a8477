"""The Kafka record of one tenant's share of a delivery on wa.webhooks.v1: a `webhook.received` envelope keyed by
the share's phone number id (its WABA id for account-level shares). Built the same way for a fresh delivery and for
an operator's replay of a stored one (which adds the header `replayed: true`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eva_events.envelope import EventEnvelope, make_event
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookReceived

REPLAYED_HEADER = "replayed"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    tenant_id: str
    key: bytes
    value: bytes
    headers: dict[str, str]


def delivery_record(
    *,
    delivery_id: str,
    tenant_id: str,
    phone_number_id: str,
    received_at: datetime,
    payload: dict[str, Any],
    traceparent: str | None,
    replayed: bool = False,
) -> DeliveryRecord:
    event: EventEnvelope = make_event(
        WEBHOOK_RECEIVED,
        tenant_id=tenant_id,
        data=WebhookReceived(
            delivery_id=delivery_id, phone_number_id=phone_number_id, received_at=received_at, payload=payload
        ),
        traceparent=traceparent,
    )
    headers = {"event-id": event.id, "event-type": event.type, "tenant-id": tenant_id, "delivery-id": delivery_id}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return DeliveryRecord(
        delivery_id=delivery_id, tenant_id=tenant_id, key=phone_number_id.encode(), value=event.to_bytes(),
        headers=headers,
    )
