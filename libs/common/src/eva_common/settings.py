"""Typed settings shared by every deployable; a service subclasses ServiceSettings with its own env prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "changethis", "change-me", "secret", "password", "placeholder", "todo", "xxx"}
)


class ConfigurationError(RuntimeError):
    """Raised at start-up when the configuration cannot work."""


def require_real_secret(name: str, value: SecretStr | None) -> SecretStr:
    """Refuses missing and placeholder secrets, so a mis-configured service fails at start, not at first use."""
    if value is None or value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is missing or a placeholder; set a real secret")
    return value


class ServiceSettings(BaseSettings):
    """Settings every service has. Values come from the environment (EVA_* shared, <SERVICE>_* own)."""

    # Validation errors never echo the input: it may hold secrets.
    model_config = SettingsConfigDict(env_prefix="EVA_", extra="ignore", frozen=True, hide_input_in_errors=True)

    service_name: str = "eva"
    environment: Literal["dev", "test", "production"] = "dev"
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 0
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    otlp_endpoint: str | None = None
    # Trust between services: every service verifies tokens against auth's JWKS.
    auth_grpc_target: str = "127.0.0.1:50051"
    jwt_issuer: str = "eva-auth"
    jwt_audience: str = "eva"
    # The credential this service presents to auth to obtain its short-lived service token.
    service_client_secret: SecretStr | None = None
    grpc_deadline_seconds: float = Field(default=5.0, gt=0)
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)

    @field_validator("service_client_secret")
    @classmethod
    def _real_client_secret(cls, value: SecretStr | None) -> SecretStr:
        return require_real_secret("EVA_SERVICE_CLIENT_SECRET", value)


class DatabaseSettings(ServiceSettings):
    """For a service with its own PostgreSQL database: EVA_DATABASE_URL is required (no default: a default would
    hold a password), a postgresql+asyncpg:// URL, kept secret (never in a repr, a log or an error)."""

    database_url: SecretStr
    db_pool_size: int = Field(default=10, ge=1)
    # housekeeping of the outbox and the inbox (eva_common.housekeeping): how long published events and consumers'
    # claims are kept; the inbox's must stay above the longest Kafka topic retention (7 days)
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    inbox_retention_days: float = Field(default=14.0, gt=7)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("postgresql+asyncpg://"):
            raise ValueError("EVA_DATABASE_URL must be a postgresql+asyncpg:// URL")
        return value


class RedisSettings(ServiceSettings):
    """For a service that uses Redis: EVA_REDIS_URL is required."""

    redis_url: str = Field(min_length=1)


class KafkaSettings(ServiceSettings):
    """For a service that produces or consumes Kafka records: EVA_KAFKA_BOOTSTRAP is required."""

    kafka_bootstrap: str = Field(min_length=1)


def database_url(*, user: str, password: str, host: str, port: int, database: str) -> str:
    """An asyncpg SQLAlchemy URL."""
    return f"postgresql+asyncpg://{user}:{password}@{host}:{port}/{database}"
