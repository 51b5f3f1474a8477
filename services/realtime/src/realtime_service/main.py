"""Composition root of the realtime service (on eva_common.runtime's skeleton): settings -> Redis, sequencer,
Socket.io emitter; workers: the events consumer and the presence sweeper."""

from __future__ import annotations

from collections.abc import Mapping

from eva_common.http.app import create_http_app
from eva_common.realtime.presence import PresenceStore
from eva_common.realtime.presence import for_channel as presence_namespace
from eva_common.realtime.sequence import RedisSequencer
from eva_common.redis import redis_ready
from eva_common.runtime import Periodic, ServiceApp, Worker, run_service

from realtime_service.emitter import RedisSocketEmitter
from realtime_service.handlers import batch_handler, event_handler
from realtime_service.presence import PresenceSweeper
from realtime_service.service import RealtimeRelay
from realtime_service.settings import Settings, get_settings


class RealtimeApp(ServiceApp):
    """Everything the process runs, built but not started."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        redis = self.redis(settings)
        emitter = RedisSocketEmitter(redis_url=settings.redis_url, channel=settings.socketio_channel)
        self.on_close("socket emitter", emitter.close)
        relay = RealtimeRelay(
            sequencer=RedisSequencer(
                redis=redis, buffer_size=settings.replay_buffer_size,
                dedupe_ttl_seconds=settings.event_dedupe_ttl_seconds,
            ),
            emitter=emitter,
        )
        # the TTL is the gateways' to set when they write entries; the sweeper only compares expiries with the clock
        sweeper = PresenceSweeper(
            presence=PresenceStore(redis, ttl_seconds=30, namespace=presence_namespace(settings.socketio_channel)),
            emitter=emitter,
        )
        self.presence_sweeper = Periodic(sweeper.sweep, interval_seconds=settings.presence_sweep_interval_seconds)
        self.consumer = self.kafka_consumer(settings, topics=[settings.messaging_topic, settings.conversation_topic],
                                            group_id=settings.consumer_group, handler=event_handler(relay=relay),
                                            batch_handler=batch_handler(relay=relay))
        self.http_app = create_http_app(
            title="Eva realtime",
            readiness=self.readiness(redis=lambda: redis_ready(redis), kafka=self.consumer.ready),
        )

    def workers(self) -> Mapping[str, Worker]:
        return {"events_consumer": self.consumer, "presence_sweeper": self.presence_sweeper}


def run() -> None:
    run_service(get_settings, RealtimeApp, name="realtime")
