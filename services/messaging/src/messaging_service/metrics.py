"""Prometheus metrics of the messaging service (beside eva_common's HTTP, gRPC and Kafka ones)."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_ITEMS = Counter(
    "eva_messaging_webhook_items_total",
    "Messages, statuses and errors of webhook deliveries, by what became of them",
    ["outcome"],
)
