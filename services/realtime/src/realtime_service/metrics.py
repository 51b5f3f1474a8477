"""Prometheus metrics of the realtime service (beside eva_common's HTTP and Kafka ones)."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_RELAYED = Counter(
    "eva_realtime_events_total",
    "Seq-bearing Socket.io events, by event and outcome (emitted, or skipped: already emitted on a redelivery)",
    ["event", "outcome"],
)
PRESENCE_EXPIRED = Counter(
    "eva_realtime_presence_expired_total", "Users announced offline because their sockets' entries expired"
)
