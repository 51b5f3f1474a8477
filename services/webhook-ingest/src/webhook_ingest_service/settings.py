"""Configuration of the webhook-ingest service (EVA_* environment variables)."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import PLACEHOLDER_SECRETS, DatabaseSettings, KafkaSettings, RedisSettings
from eva_events.topics import WA_WEBHOOKS, WEBHOOK_OUTCOMES
from pydantic import Field, SecretStr, field_validator, model_validator

MAX_DELIVERY_BYTES = 3_145_728  # Meta: "Webhook payloads can be up to 3 MB."


class Settings(DatabaseSettings, RedisSettings, KafkaSettings):
    service_name: str = "webhook-ingest"
    http_port: int = 3002
    tenant_grpc_target: str = "127.0.0.1:50052"

    # The platform's own Meta app: signs deliveries of tenants that have no app secret of their own, and
    # answers the GET handshake for the platform-wide callback URL. Both optional.
    platform_app_secret: SecretStr | None = None
    platform_verify_token: SecretStr | None = None

    max_body_bytes: int = Field(default=MAX_DELIVERY_BYTES, gt=0)
    kafka_ack_timeout_seconds: float = Field(default=2.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=0)
    tenant_lookup_timeout_seconds: float = Field(default=1.5, gt=0)
    tenant_cache_seconds: float = Field(default=30.0, ge=0)
    tenant_negative_cache_seconds: float = Field(default=5.0, ge=0)
    # Unverifiable requests (bad signature, malformed body, wrong verify token) per client IP and minute.
    unverified_requests_per_minute: int = Field(default=60, gt=0)

    webhooks_topic: str = WA_WEBHOOKS
    outcomes_topic: str = WEBHOOK_OUTCOMES
    recorder_group: str = "webhook-ingest-recorder"
    outcomes_group: str = "webhook-ingest-outcomes"

    @field_validator("platform_app_secret", "platform_verify_token")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _no_placeholder_platform_secrets(self) -> Settings:
        if self.environment != "dev":
            for name, value in (("EVA_PLATFORM_APP_SECRET", self.platform_app_secret),
                                ("EVA_PLATFORM_VERIFY_TOKEN", self.platform_verify_token)):
                if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} is a placeholder; set a real secret or leave it unset")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
