"""Prometheus metrics of the ingest path."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter, Histogram


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    SIGNATURE_INVALID = "signature_invalid"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNROUTED = "unrouted"
    KAFKA_TIMEOUT = "kafka_timeout"
    RATE_LIMITED = "rate_limited"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"


DELIVERIES = Counter("eva_webhook_deliveries_total", "Webhook POST deliveries by outcome", ["outcome"])
UNROUTED_PARTS = Counter(
    "eva_webhook_unrouted_total", "Verified delivery parts for a phone number no tenant owns (kept, not published)"
)
KAFKA_ACK_SECONDS = Histogram(
    "eva_webhook_kafka_ack_seconds",
    "Time from publishing a delivery to the broker's acknowledgement of all its records",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
HANDSHAKES = Counter(
    "eva_webhook_handshakes_total",
    "GET verification handshakes by outcome (verified, refused, incomplete, rate_limited)",
    ["outcome"],
)

for _outcome in Outcome:
    DELIVERIES.labels(_outcome.value)
