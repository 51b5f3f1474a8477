"""Events produced by the n8n-integration service (topic integration.events.v1, keyed by tenant id): what a tenant's
admins are told about their outbound webhooks."""

from __future__ import annotations

from typing import Final

from eva_events.envelope import CamelModel
from eva_events.times import Instant

WEBHOOK_SUBSCRIPTION_PAUSED: Final = "webhook.subscription_paused"

EVENT_TYPES: Final = frozenset({WEBHOOK_SUBSCRIPTION_PAUSED})


class WebhookSubscriptionPaused(CamelModel):
    """A subscription that kept failing was paused: it gets no attempts (its new events still queue) until an admin
    resumes it. Never carries the subscription's secret."""

    subscription_id: str
    url: str
    reason: str
    consecutive_failures: int
    last_error: str | None = None
    last_status_code: int | None = None
    failing_since: Instant | None = None
    paused_at: Instant
