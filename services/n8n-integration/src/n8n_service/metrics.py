"""Prometheus metrics of the outbound webhooks, named `eva_outbound_webhook_*` apart from webhook-ingest's
`eva_webhook_*` (Meta's deliveries to Eva); the shared HTTP, Kafka and worker metrics come from eva_common."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_ATTEMPTS = Counter(
    "eva_outbound_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, failed (to be retried), dead (dead-lettered), or stale (the "
    "lease was lost meanwhile, nothing recorded)", ["outcome"])
ATTEMPT_LATENCY = Histogram(
    "eva_outbound_webhook_attempt_seconds", "Time from the request to the receiver's answer (or the failure)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DELIVERIES_CREATED = Counter(
    "eva_outbound_webhook_deliveries_created_total", "Deliveries queued by the fan-out, by public event type", ["type"])
PENDING_DELIVERIES = Gauge("eva_outbound_webhook_pending_deliveries", "Deliveries pending (every tenant), sampled")
PAUSED_SUBSCRIPTIONS = Gauge(
    "eva_outbound_webhook_paused_subscriptions", "Subscriptions paused (every tenant), sampled")
SUBSCRIPTIONS_PAUSED = Counter(
    "eva_outbound_webhook_subscriptions_paused_total",
    "Subscriptions paused by the delivery worker after repeated failures")
