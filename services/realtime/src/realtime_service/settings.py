"""Configuration of the realtime service (EVA_* environment variables)."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import KafkaSettings, RedisSettings
from eva_events.topics import CONVERSATION_EVENTS, MESSAGING_EVENTS
from pydantic import Field


class Settings(RedisSettings, KafkaSettings):
    service_name: str = "realtime"
    http_port: int = 8105

    messaging_topic: str = MESSAGING_EVENTS
    conversation_topic: str = CONVERSATION_EVENTS
    consumer_group: str = "realtime"
    socketio_channel: str = "eva-socketio"
    # Per-tenant replay buffer (the last N seq-bearing events), and how long an event id is remembered so a
    # redelivered record gets its original seq back.
    replay_buffer_size: int = Field(default=1000, gt=0)
    event_dedupe_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # How often sockets whose presence entries expired (a crashed gateway replica's) are announced offline.
    presence_sweep_interval_seconds: float = Field(default=5.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
