"""Events about raw WhatsApp webhook deliveries (topic wa.webhooks.v1, and the outcomes topic)."""

from __future__ import annotations

from typing import Any

from eva_events.envelope import CamelModel
from eva_events.times import Instant

WEBHOOK_RECEIVED = "webhook.received"
WEBHOOK_PROCESSED = "webhook.processed"


class WebhookReceived(CamelModel):
    """One verified delivery (or the part of it that belongs to one tenant)."""

    delivery_id: str
    phone_number_id: str
    received_at: Instant
    payload: dict[str, Any]


class WebhookProcessed(CamelModel):
    delivery_id: str
    outcome: str  # processed | failed
    messages: int = 0
    statuses: int = 0
    detail: str | None = None
