"""Configuration of the conversation service, from EVA_* environment variables."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import DatabaseSettings, KafkaSettings, RedisSettings, require_real_secret
from eva_events import topics
from pydantic import SecretStr, field_validator


class Settings(DatabaseSettings, RedisSettings, KafkaSettings):
    service_name: str = "conversation"
    # Topic names are injectable so tests run on their own topics.
    conversation_events_topic: str = topics.CONVERSATION_EVENTS
    messaging_events_topic: str = topics.MESSAGING_EVENTS
    audit_events_topic: str = topics.AUDIT_EVENTS
    consumer_group: str = "conversation"

    @field_validator("service_client_secret")
    @classmethod
    def _real_client_secret(cls, value: SecretStr | None) -> SecretStr | None:  # type: ignore[override]
        # This service calls auth only with the caller's own token, so it needs no service token; a secret that is
        # set must be real.
        return None if value is None else require_real_secret("EVA_SERVICE_CLIENT_SECRET", value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
