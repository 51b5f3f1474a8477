"""Tenant service settings (EVA_* environment variables); secrets and keys are checked at start-up."""

from __future__ import annotations

from functools import lru_cache

from eva_common.crypto import AES_KEY_BYTES, KEY_ID_PATTERN, EncryptionSettings, decode_key
from eva_common.settings import DatabaseSettings, KafkaSettings, RedisSettings
from eva_events.topics import AUDIT_EVENTS, MESSAGING_EVENTS, TENANT_EVENTS
from pydantic import Field, SecretStr, field_validator

MIN_LOOKUP_KEY_BYTES = 32
__all__ = ["AES_KEY_BYTES", "KEY_ID_PATTERN", "MIN_LOOKUP_KEY_BYTES", "Settings", "decode_key", "get_settings"]


class Settings(EncryptionSettings, DatabaseSettings, RedisSettings, KafkaSettings):
    service_name: str = "tenant"
    grpc_host: str = "127.0.0.1"
    # EVA_ENCRYPTION_KEYS / EVA_ENCRYPTION_ACTIVE_KEY: eva_common.crypto.EncryptionSettings
    # base64, at least 32 bytes: HMAC-SHA256 key for the verify-token lookup digest.
    lookup_hmac_key: SecretStr
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    # Topics and consumer groups (tests give unique ones; the defaults are the platform's).
    tenant_events_topic: str = TENANT_EVENTS
    audit_events_topic: str = AUDIT_EVENTS
    messaging_events_topic: str = MESSAGING_EVENTS
    usage_consumer_group: str = "tenant-usage"
    audit_consumer_group: str = "tenant-audit"
    # Audit entries that name no tenant are stored under the tenant with this slug (the platform's).
    platform_tenant_slug: str = "platform"

    @field_validator("lookup_hmac_key")
    @classmethod
    def _valid_lookup_key(cls, value: SecretStr) -> SecretStr:
        decode_key("EVA_LOOKUP_HMAC_KEY", value, min_bytes=MIN_LOOKUP_KEY_BYTES, exact=False)
        return value

    def lookup_key_bytes(self) -> bytes:
        return decode_key("EVA_LOOKUP_HMAC_KEY", self.lookup_hmac_key, min_bytes=MIN_LOOKUP_KEY_BYTES, exact=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
