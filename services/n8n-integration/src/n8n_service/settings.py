"""Settings of the n8n-integration service (EVA_* environment variables)."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import Annotated

from eva_common.crypto import EncryptionSettings
from eva_common.settings import DatabaseSettings, KafkaSettings, RedisSettings
from eva_events import topics
from pydantic import Field, field_validator
from pydantic_settings import NoDecode


class Settings(EncryptionSettings, DatabaseSettings, RedisSettings, KafkaSettings):
    # Redis: the revocation times every token verifier checks (the gRPC and /n8n callers), the /n8n rate limits.
    service_name: str = "n8n-integration"
    http_port: int = 3003
    # Topics and the consumer group (tests give unique ones; the defaults are the platform's).
    messaging_events_topic: str = topics.MESSAGING_EVENTS
    conversation_events_topic: str = topics.CONVERSATION_EVENTS
    audit_events_topic: str = topics.AUDIT_EVENTS
    integration_events_topic: str = topics.INTEGRATION_EVENTS
    consumer_group: str = "n8n-webhooks"
    outbox_poll_seconds: float = Field(default=0.5, gt=0)

    # --- outbound webhooks -----------------------------------------------------------------------------------
    # Who may be called: https only, public addresses only, unless the operator allows more. The local stack allows
    # http and loopback (a local n8n); CIDRs, comma-separated or a JSON list ("127.0.0.0/8,::1/128").
    webhook_allow_http: bool = False
    webhook_allow_private_networks: Annotated[list[str], NoDecode] = []
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # A PEM file of extra certificate authorities receivers' certificates may chain to (an n8n behind an internal
    # CA), trusted besides the system's.
    webhook_ca_bundle: str | None = None
    # Retries: the n-th failed attempt waits min(base * 2^(n-1), max) seconds, less up to `jitter` of it (random),
    # until `max_age` after the delivery was created (or redelivered); then the delivery is dead.
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_jitter: float = Field(default=0.2, ge=0, le=1)
    webhook_max_age_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Pausing: a subscription whose last `pause_after_failures` attempts all failed, the first of them at least
    # `pause_min_failing_seconds` ago, is paused.
    webhook_pause_after_failures: int = Field(default=20, ge=1)
    webhook_pause_min_failing_seconds: float = Field(default=3600.0, ge=0)
    # The delivery worker: how many deliveries it leases at once, how often it looks when idle.
    webhook_batch_size: int = Field(default=50, ge=1, le=1000)
    webhook_concurrency: int = Field(default=20, ge=1)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_stats_interval_seconds: float = Field(default=15.0, gt=0)

    # --- the /n8n API ----------------------------------------------------------------------------------------
    conversation_grpc_target: str = "127.0.0.1:50053"
    messaging_grpc_target: str = "127.0.0.1:50054"
    # Requests per API key per minute (Redis, every replica together), and API-key exchanges at auth (keys not in
    # the cache) per client address per minute.
    n8n_rate_limit_per_minute: int = Field(default=300, gt=0)
    n8n_key_exchanges_per_ip_per_minute: int = Field(default=60, gt=0)
    n8n_rate_limit_prefix: str = Field(default="rl:n8n", min_length=1)
    n8n_api_key_cache_max_entries: int = Field(default=10_000, gt=0)
    # Idempotency keys: kept this long; a request finding its key still in progress waits at most
    # `wait_seconds` for the first one's answer (then 409 IDEMPOTENCY_IN_PROGRESS); a claim whose request died is
    # taken over after `lease_seconds`.
    n8n_idempotency_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    # GET /n8n/events: how long the tenants' event log keeps an event
    n8n_events_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    n8n_idempotency_wait_seconds: float = Field(default=5.0, ge=0)
    n8n_idempotency_lease_seconds: float = Field(default=60.0, gt=0)

    @field_validator("webhook_allow_private_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("webhook_allow_private_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS: {network!r} is not a CIDR") from None
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # required fields come from the environment
