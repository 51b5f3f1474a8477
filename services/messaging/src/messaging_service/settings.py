"""Configuration of the messaging service, from EVA_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from eva_common.settings import DatabaseSettings, KafkaSettings, RedisSettings
from eva_events import topics
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

MIB = 1024 * 1024


class Settings(DatabaseSettings, RedisSettings, KafkaSettings):
    # Validation errors never echo the input: it holds secrets (merged with ServiceSettings' config).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    # Also the name of this service's service token (EVA_SERVICE_NAME=messaging).
    service_name: str = "messaging"
    conversation_grpc_target: str = "127.0.0.1:50053"
    # Topic names are injectable so tests run on their own topics.
    webhooks_topic: str = topics.WA_WEBHOOKS
    messaging_events_topic: str = topics.MESSAGING_EVENTS
    webhook_outcomes_topic: str = topics.WEBHOOK_OUTCOMES
    consumer_group: str = "messaging"
    # Webhook deliveries are processed a Kafka fetch at a time (one transaction for the batch); within a batch, the
    # guests' contacts are resolved at the conversation service one call per tenant (and per 100 guests), this many
    # calls at the same time.
    webhook_concurrency: int = Field(default=8, ge=1, le=64)
    tenant_grpc_target: str = "127.0.0.1:50052"
    # The Graph API the media job asks for media URLs (the simulator locally, Meta in production), and the version of
    # it every Graph call names (`{graph}/{version}/...`).
    whatsapp_graph_url: str = "http://127.0.0.1:3010"
    whatsapp_api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    # A status for a message never stored is deleted once parked this long: Meta retries a webhook for up to 7 days,
    # so after that its message will never come. The expiry job runs at start, then every interval, in batches.
    parked_status_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    parked_status_expiry_interval_seconds: float = Field(default=3600, gt=0)
    parked_status_expiry_batch: int = Field(default=1000, ge=1, le=100_000)
    # Where downloaded media is stored (the stack sets .local/<profile>/media).
    media_root: Path = Path(".local/media")
    media_max_attempts: int = Field(default=5, ge=1)
    media_backoff_seconds: float = Field(default=2.0, gt=0)
    media_poll_seconds: float = Field(default=1.0, gt=0)
    media_download_timeout_seconds: float = Field(default=60.0, gt=0)
    # Where media is stored: `local` (EVA_MEDIA_ROOT) or `s3` (any S3-compatible object store, EVA_MEDIA_S3_*).
    media_store: Literal["local", "s3"] = "local"
    # The S3 store spools each download here (the system's temporary folder when unset) before it verifies and
    # uploads it: it needs room for the largest media (100 MB) per concurrent download.
    media_spool_dir: Path | None = None
    media_s3_bucket: str = ""
    media_s3_endpoint_url: str | None = None  # empty: AWS S3
    media_s3_region: str | None = None
    # Both or neither: when unset, the default AWS credential chain (AWS_* env, web identity, instance profile...).
    media_s3_access_key_id: str | None = None
    media_s3_secret_access_key: SecretStr | None = None
    media_s3_prefix: str = ""
    media_s3_path_style: bool = False  # MinIO and most self-hosted stores need path-style addressing
    media_s3_checksums: bool = True  # ChecksumSHA256 on uploads; turn off for stores that refuse it
    media_s3_multipart_threshold_bytes: int = Field(default=16 * MIB, ge=5 * MIB)
    media_s3_part_size_bytes: int = Field(default=8 * MIB, ge=5 * MIB)
    media_s3_timeout_seconds: float = Field(default=60.0, gt=0)
    # Message templates: every interval the due tenants (template_syncs) are synced from the Graph API, up to a batch
    # per pass, and become due again one interval later. Graph calls time out, and 5xx answers and timeouts are
    # retried (attempts in all, doubling back-off).
    template_sync_interval_seconds: float = Field(default=3600, gt=0)
    template_sync_batch: int = Field(default=50, ge=1, le=10_000)
    template_graph_timeout_seconds: float = Field(default=15.0, gt=0)
    template_graph_attempts: int = Field(default=3, ge=1, le=10)
    template_graph_backoff_seconds: float = Field(default=0.5, ge=0)
    # tenant.events.v1: `whatsapp.credentials_updated` registers the tenant's template sync and syncs it at once.
    tenant_events_topic: str = topics.TENANT_EVENTS
    tenant_events_consumer_group: str = "messaging-tenant-events"

    # --- sending (the sender worker and the send governor) ---
    # Messages per second per business number, shared by every sender replica (Meta's default 80; coexistence
    # numbers 20); a number's own limit (tenant settings) wins. The governor spaces sends evenly at
    # `rate * send_rate_headroom` so that no second ever sees more than the limit at Meta.
    send_rate_per_number: int = Field(default=80, ge=1, le=1000)
    send_rate_coexistence: int = Field(default=20, ge=1, le=1000)
    send_rate_headroom: float = Field(default=0.97, gt=0, le=1)
    # Attempts per message for Meta's retryable errors (1, 2, 4, 130429, 131000, 131016, 131056, 133004, timeouts),
    # with exponential backoff from `send_backoff_seconds` (doubling, jitter, capped at `send_backoff_max_seconds`).
    send_max_attempts: int = Field(default=3, ge=1, le=20)
    send_backoff_seconds: float = Field(default=1.0, gt=0)
    send_backoff_max_seconds: float = Field(default=60.0, gt=0)
    # How long one Graph call may take; a call without an answer is *uncertain*: Meta may have sent it.
    send_timeout_seconds: float = Field(default=15.0, gt=0)
    # A job leased by a sender that died is taken over after this long; before sending again the new sender looks
    # for the statuses of the lost send (biz_opaque_callback_data). Must exceed send_timeout_seconds.
    send_lease_seconds: float = Field(default=60.0, gt=0)
    # An uncertain send is resent only when no status of it arrived within this long.
    send_reconcile_seconds: float = Field(default=30.0, gt=0)
    # Concurrent Graph calls per sender replica, jobs leased per round, and how often an idle sender looks.
    send_concurrency: int = Field(default=32, ge=1, le=512)
    send_batch: int = Field(default=64, ge=1, le=1000)
    send_poll_seconds: float = Field(default=0.5, gt=0)
    # Admission of SendMessage and RetryMessage: this many at once per replica; a request that finds no place waits
    # at most `accept_wait_seconds` (and half of what is left of its caller's deadline: a burst is queued, a sustained
    # overload is shed), then is refused with 503
    # OVERLOADED and Retry-After before anything was stored, instead of timing out with an unknown outcome.
    accept_concurrency: int = Field(default=8, ge=1, le=1024)
    accept_wait_seconds: float = Field(default=2.0, ge=0)
    # A request that reaches the service with less than this left of its caller's deadline (it queued that long on
    # the way) is refused at once: its work would end after the caller stopped waiting.
    accept_min_deadline_seconds: float = Field(default=1.0, ge=0)
    # Whether a tenant's monthly quota is used up is asked of the tenant service at most this often per replica (a
    # tenant may overshoot its quota by the messages of this long).
    quota_cache_seconds: float = Field(default=5.0, ge=0)
    # The same Idempotency-Key answers the first message for this long.
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    # Meta's typing indicator disappears after 25 s: at most one per conversation in this long.
    typing_interval_seconds: float = Field(default=25.0, gt=0)
    # Tenant sending profiles (credentials, policy, limits) are cached this long per replica.
    profile_cache_seconds: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _lease_outlives_a_call(self) -> Settings:
        if self.send_lease_seconds <= self.send_timeout_seconds:
            raise ValueError("EVA_SEND_LEASE_SECONDS must exceed EVA_SEND_TIMEOUT_SECONDS")
        return self

    @field_validator("media_s3_endpoint_url", "media_s3_region", "media_s3_access_key_id",
                     "media_s3_secret_access_key", "media_spool_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.media_store == "s3":
            if not self.media_s3_bucket.strip():
                raise ValueError("EVA_MEDIA_S3_BUCKET is required when EVA_MEDIA_STORE=s3")
            if (self.media_s3_access_key_id is None) != (self.media_s3_secret_access_key is None):
                raise ValueError("set both EVA_MEDIA_S3_ACCESS_KEY_ID and EVA_MEDIA_S3_SECRET_ACCESS_KEY, or neither "
                                 "(the default AWS credential chain)")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
