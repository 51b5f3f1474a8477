"""Prometheus metrics of the realtime service (beside eva_common's HTTP and Kafka ones)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_RELAYED = Counter(
    "eva_realtime_events_total",
    "Seq-bearing Socket.io events, by event and outcome (emitted, or skipped: already emitted on a redelivery)",
    ["event", "outcome"],
)
PRESENCE_EXPIRED = Counter(
    "eva_realtime_presence_expired_total", "Users announced offline because their sockets' entries expired"
)
EMIT_DELAY = Histogram(
    "eva_realtime_emit_delay_seconds",
    "From an event's occurredAt (written with the change, e.g. the guest's message stored) to its Socket.io emission, "
    "by Socket.io event; first emissions only",
    ["event"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0),
)
