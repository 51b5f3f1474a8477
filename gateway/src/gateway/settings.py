"""Settings of the gateway (all from EVA_* environment variables)."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import RedisSettings
from pydantic import Field, field_validator

from gateway.client_context import Network, parse_networks

ONE_MIB = 1024 * 1024


class Settings(RedisSettings):
    service_name: str = "gateway"
    http_port: int = 3001
    tenant_grpc_target: str = "127.0.0.1:50052"
    conversation_grpc_target: str = "127.0.0.1:50053"
    messaging_grpc_target: str = "127.0.0.1:50054"
    # n8n-integration's WebhookService (/api/webhooks)
    n8n_integration_grpc_target: str = "127.0.0.1:50055"
    # Comma-separated browser origins allowed by CORS and by the Socket.io handshake.
    frontend_url: str = "http://localhost:5173"
    socketio_channel: str = "eva-socketio"
    # An unauthenticated socket (no token in the handshake, or an expired one) must `authenticate` within this time.
    socket_auth_timeout_seconds: float = Field(default=5.0, gt=0)
    # How often connected sockets are checked for an expired or revoked access token.
    socket_sweep_interval_seconds: float = Field(default=15.0, gt=0)
    # Presence entries of this replica's sockets live this long unless the heartbeat (every ttl/3) refreshes them.
    presence_ttl_seconds: float = Field(default=30.0, gt=0)
    # Per-socket rate limit of client events (token bucket in memory): sustained rate and burst.
    socket_events_per_second: float = Field(default=10.0, gt=0)
    socket_event_burst: int = Field(default=30, ge=1)
    # How often sockets still behind their tenant's seq are filled from the replay buffer (a lost pub/sub message).
    socket_catch_up_interval_seconds: float = Field(default=2.0, gt=0)
    # Replay-buffer page read per Redis round trip by resume and gap fills.
    socket_replay_page_size: int = Field(default=500, ge=1, le=5000)
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    # Deadline of a whole server-streaming upstream call (media downloads relayed to the client).
    media_stream_deadline_seconds: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=ONE_MIB, gt=0)
    # Rate limits (Redis, shared by every replica): authenticated /api/* calls per user (or API key) and per tenant,
    # and /auth/* calls (and API-key exchanges) per client IP. All per minute.
    rate_limit_user_per_minute: int = Field(default=300, gt=0)
    rate_limit_tenant_per_minute: int = Field(default=3000, gt=0)
    rate_limit_auth_ip_per_minute: int = Field(default=60, gt=0)
    # Prefix of the rate-limit keys in Redis (replicas that share limits share the prefix).
    rate_limit_prefix: str = Field(default="rl:gateway", min_length=1)
    # Comma-separated addresses or CIDR networks of the reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Admission of POST /api/messages and its retries per replica: this many sends waiting on messaging at once, the
    # others wait at most `send_admission_wait_seconds`, then are refused 503 OVERLOADED (Retry-After) without a
    # call: an overloaded messaging service is not sent more than it can answer within the deadline.
    send_admission_concurrency: int = Field(default=16, ge=1, le=1024)
    send_admission_wait_seconds: float = Field(default=2.0, ge=0)
    # How many exchanged API-key tokens each replica keeps in memory.
    api_key_cache_max_entries: int = Field(default=10_000, gt=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)  # raises ValueError on an entry that is neither an address nor a network
        return value

    @property
    def frontend_origins(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.frontend_url.split(",") if origin.strip()]

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def upstream_targets(self) -> dict[str, str]:
        return {
            "auth": self.auth_grpc_target,
            "tenant": self.tenant_grpc_target,
            "conversation": self.conversation_grpc_target,
            "messaging": self.messaging_grpc_target,
            "n8n-integration": self.n8n_integration_grpc_target,
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
