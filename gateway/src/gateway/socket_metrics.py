"""Prometheus metrics of the gateway's Socket.io side (beside eva_common's HTTP ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SOCKETS_CONNECTED = Gauge("eva_gateway_sockets_connected", "Socket.io connections open on this replica")
SOCKET_EVENTS = Counter(
    "eva_gateway_socket_events_total",
    "Seq-bearing events per socket, by outcome: delivered (live, in order), duplicate (dropped, seq <= last), "
    "gap_filled (delivered from the replay buffer), resync (the buffer no longer covered a gap)",
    ["outcome"],
)
SOCKET_RESUMES = Counter(
    "eva_gateway_socket_resumes_total", "`resume` calls by outcome (ok, resync, invalid)", ["outcome"]
)
SOCKET_RATE_LIMITED = Counter(
    "eva_gateway_socket_rate_limited_total", "Client Socket.io events refused by the per-socket rate limit"
)
PRESENCE_ANNOUNCED = Counter(
    "eva_gateway_presence_updates_total", "presence:update announcements by this replica", ["online"]
)
