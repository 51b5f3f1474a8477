"""Prometheus metrics of the messaging service (beside eva_common's HTTP, gRPC and Kafka ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_ITEMS = Counter(
    "eva_messaging_webhook_items_total",
    "Messages, statuses and errors of webhook deliveries, by what became of them",
    ["outcome"],
)

PARKED_STATUSES_EXPIRED = Counter(
    "eva_messaging_parked_statuses_expired_total",
    "Statuses deleted because they stayed parked longer than Meta retries (their message never came)",
)
PARKED_STATUSES = Gauge(
    "eva_messaging_parked_statuses",
    "Statuses parked for a message not stored (yet), all tenants together, as of the last expiry pass",
)

SENDS = Counter(
    "eva_messaging_sends_total",
    "Graph API send calls by outcome (accepted, retry, failed, uncertain) and Meta's error code (empty when none)",
    ["outcome", "code"],
)
SEND_LATENCY = Histogram(
    "eva_messaging_send_seconds",
    "Duration of one Graph API send call",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
GOVERNOR_WAIT = Histogram(
    "eva_messaging_governor_wait_seconds",
    "How long a send waited for its slot in the per-number throughput governor",
    buckets=(0, 0.005, 0.0125, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
)
OUTBOUND_CREATED = Counter(
    "eva_messaging_outbound_created_total",
    "Outbound messages accepted for sending, by type and sender kind",
    ["type", "sender"],
)
TOKEN_REFUSED = Counter(
    "eva_messaging_token_refused_total",
    "Graph API calls Meta refused for the tenant's access token (190: expired or revoked), by tenant and by what "
    "called (send, template_sync); only tenants whose token was refused have a series",
    ["tenant", "source"],
)
