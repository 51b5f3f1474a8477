"""Configuration of the messaging service, from EVA_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from eva_common.settings import DatabaseSettings, KafkaSettings
from eva_events import topics
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

MIB = 1024 * 1024


class Settings(DatabaseSettings, KafkaSettings):
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
    # Webhook deliveries of one partition handled at the same time (each message is stored once and statuses move
    # only forward, so their order does not matter); the offset after a window is committed when all of it is done.
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
