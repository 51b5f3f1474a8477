"""Settings of the n8n-integration service."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import DatabaseSettings, KafkaSettings


class Settings(DatabaseSettings, KafkaSettings):
    service_name: str = "n8n-integration"
    http_port: int = 3003


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # required fields come from the environment
