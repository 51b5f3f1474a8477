"""Configuration of the messaging service, from EVA_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from eva_common.settings import ServiceSettings
from eva_events import topics
from pydantic import Field


class Settings(ServiceSettings):
    # Also the name of this service's service token (EVA_SERVICE_NAME=messaging).
    service_name: str = "messaging"
    database_url: str = Field(min_length=1)
    conversation_grpc_target: str = "127.0.0.1:50053"
    db_pool_size: int = Field(default=10, ge=1)
    # Topic names are injectable so tests run on their own topics.
    webhooks_topic: str = topics.WA_WEBHOOKS
    messaging_events_topic: str = topics.MESSAGING_EVENTS
    webhook_outcomes_topic: str = topics.WEBHOOK_OUTCOMES
    consumer_group: str = "messaging"
    tenant_grpc_target: str = "127.0.0.1:50052"
    # The Graph API the media job asks for media URLs (the simulator locally, Meta in production).
    whatsapp_graph_url: str = "http://127.0.0.1:3010"
    # Where downloaded media is stored (the stack sets .local/<profile>/media).
    media_root: Path = Path(".local/media")
    media_max_attempts: int = Field(default=5, ge=1)
    media_backoff_seconds: float = Field(default=2.0, gt=0)
    media_poll_seconds: float = Field(default=1.0, gt=0)
    media_download_timeout_seconds: float = Field(default=60.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
