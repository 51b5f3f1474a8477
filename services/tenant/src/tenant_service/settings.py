"""Tenant service settings (EVA_* environment variables); secrets and keys are checked at start-up."""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache

from eva_common.settings import PLACEHOLDER_SECRETS, DatabaseSettings, KafkaSettings, RedisSettings
from eva_events.topics import AUDIT_EVENTS, MESSAGING_EVENTS, TENANT_EVENTS
from pydantic import Field, SecretStr, field_validator, model_validator

AES_KEY_BYTES = 32
MIN_LOOKUP_KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def decode_key(name: str, value: SecretStr, *, min_bytes: int, exact: bool) -> bytes:
    """Decodes a base64 key, refusing placeholders and wrong lengths (the error never contains the key)."""
    raw_text = value.get_secret_value().strip()
    if raw_text.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is missing or a placeholder; set a real key")
    try:
        raw = base64.b64decode(raw_text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if (exact and len(raw) != min_bytes) or len(raw) < min_bytes:
        expected = f"exactly {min_bytes}" if exact else f"at least {min_bytes}"
        raise ValueError(f"{name} must decode to {expected} bytes")
    if len(set(raw)) == 1:
        raise ValueError(f"{name} is a placeholder (one repeated byte); generate a random key")
    return raw


class Settings(DatabaseSettings, RedisSettings, KafkaSettings):
    service_name: str = "tenant"
    grpc_host: str = "127.0.0.1"
    # JSON object: key id -> base64 of a 32-byte AES key. Any listed key decrypts; the active one encrypts.
    encryption_keys: dict[str, SecretStr]
    encryption_active_key: str
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

    @field_validator("encryption_keys")
    @classmethod
    def _valid_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not value:
            raise ValueError("EVA_ENCRYPTION_KEYS must list at least one key")
        for kid, key in value.items():
            if not KEY_ID_PATTERN.match(kid):
                raise ValueError(f"EVA_ENCRYPTION_KEYS: key id {kid!r} must match {KEY_ID_PATTERN.pattern}")
            decode_key(f"EVA_ENCRYPTION_KEYS[{kid}]", key, min_bytes=AES_KEY_BYTES, exact=True)
        return value

    @field_validator("lookup_hmac_key")
    @classmethod
    def _valid_lookup_key(cls, value: SecretStr) -> SecretStr:
        decode_key("EVA_LOOKUP_HMAC_KEY", value, min_bytes=MIN_LOOKUP_KEY_BYTES, exact=False)
        return value

    @model_validator(mode="after")
    def _active_key_listed(self) -> Settings:
        if self.encryption_active_key not in self.encryption_keys:
            raise ValueError("EVA_ENCRYPTION_ACTIVE_KEY must name a key listed in EVA_ENCRYPTION_KEYS")
        return self

    def encryption_key_bytes(self) -> dict[str, bytes]:
        return {
            kid: decode_key(kid, key, min_bytes=AES_KEY_BYTES, exact=True) for kid, key in self.encryption_keys.items()
        }

    def lookup_key_bytes(self) -> bytes:
        return decode_key("EVA_LOOKUP_HMAC_KEY", self.lookup_hmac_key, min_bytes=MIN_LOOKUP_KEY_BYTES, exact=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
