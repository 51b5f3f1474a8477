"""Auth service settings (EVA_* environment variables); signing keys and client secrets are checked at start-up."""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from eva_common.settings import DatabaseSettings, KafkaSettings, RedisSettings, require_real_secret
from eva_events.topics import AUDIT_EVENTS
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

MIN_PRODUCTION_CLIENT_SECRET = 16


class SigningKeyConfig(BaseModel):
    """One entry of EVA_JWT_SIGNING_KEYS: {"kid": "...", "private_key_pem": "-----BEGIN PRIVATE KEY-----..."}."""

    kid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    private_key_pem: SecretStr

    def private_key(self) -> Ed25519PrivateKey:
        try:
            key = load_pem_private_key(self.private_key_pem.get_secret_value().encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"EVA_JWT_SIGNING_KEYS[{self.kid}] is not a readable unencrypted PEM key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"EVA_JWT_SIGNING_KEYS[{self.kid}] must be an Ed25519 key")
        return key


class Settings(DatabaseSettings, RedisSettings, KafkaSettings):
    service_name: str = "auth"
    grpc_host: str = "127.0.0.1"
    tenant_grpc_target: str = "127.0.0.1:50052"
    # JSON list; the first key signs, every key is published in the JWKS (current + previous: rotation).
    jwt_signing_keys: list[SigningKeyConfig]
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3_600, le=365 * 86_400)
    # A spent refresh token presented again within this many seconds gets the same successor session (two tabs
    # refreshing at once); later it revokes the family. 0 turns the grace off.
    refresh_reuse_grace_seconds: int = Field(default=30, ge=0, le=300)
    service_token_ttl_seconds: int = Field(default=300, ge=60, le=3_600)
    api_key_token_ttl_seconds: int = Field(default=300, ge=30, le=3_600)
    # Login throttling (Redis): failed attempts per account, and attempts per client IP (x-client-ip).
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=6)
    login_ip_max_attempts: int = Field(default=30, ge=1)
    login_ip_window_seconds: int = Field(default=300, ge=6)
    audit_events_topic: str = AUDIT_EVENTS
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    # JSON object: service name -> client secret, for IssueServiceToken.
    service_clients: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("jwt_signing_keys")
    @classmethod
    def _readable_keys(cls, value: list[SigningKeyConfig]) -> list[SigningKeyConfig]:
        if not value:
            raise ValueError("EVA_JWT_SIGNING_KEYS must hold at least one key")
        kids = [entry.kid for entry in value]
        if len(set(kids)) != len(kids):
            raise ValueError("EVA_JWT_SIGNING_KEYS has duplicate kids")
        for entry in value:
            entry.private_key()
        return value

    @model_validator(mode="after")
    def _real_client_secrets(self) -> Settings:
        for name, secret in self.service_clients.items():
            if not name or ":" in name:
                raise ValueError(f"EVA_SERVICE_CLIENTS: invalid service name {name!r}")
            require_real_secret(f"EVA_SERVICE_CLIENTS[{name}]", secret)
            if self.environment == "production" and len(secret.get_secret_value()) < MIN_PRODUCTION_CLIENT_SECRET:
                raise ValueError(
                    f"EVA_SERVICE_CLIENTS[{name}] must be at least {MIN_PRODUCTION_CLIENT_SECRET} characters"
                )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
