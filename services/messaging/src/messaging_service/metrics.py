"""Prometheus metrics of the messaging service (beside eva_common's HTTP, gRPC and Kafka ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
