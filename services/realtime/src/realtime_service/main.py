"""Composition root of the realtime service: settings -> Redis, sequencer, Socket.io emitter -> consumer, presence
sweeper + HTTP."""

from __future__ import annotations

import asyncio
import logging

from eva_common.http.app import create_http_app
from eva_common.kafka.consumer import ConsumerLoop
from eva_common.kafka.publisher import LazyPublisher
from eva_common.kafka.supervisor import SupervisedConsumer
from eva_common.realtime.presence import PresenceStore
from eva_common.realtime.presence import for_channel as presence_namespace
from eva_common.realtime.sequence import RedisSequencer
from eva_common.redis import create_redis, redis_ready
from eva_common.runtime import HttpServer, bootstrap_process, wait_for_shutdown

from realtime_service.emitter import RedisSocketEmitter
from realtime_service.handlers import event_handler
from realtime_service.presence import PresenceSweeper
from realtime_service.service import RealtimeRelay
from realtime_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    redis = create_redis(settings.redis_url)
    emitter = RedisSocketEmitter(redis_url=settings.redis_url, channel=settings.socketio_channel)
    relay = RealtimeRelay(
        sequencer=RedisSequencer(
            redis=redis, buffer_size=settings.replay_buffer_size, dedupe_ttl_seconds=settings.event_dedupe_ttl_seconds
        ),
        emitter=emitter,
    )
    # the TTL is the gateways' to set when they write entries; the sweeper only compares expiries with the clock
    presence = PresenceSweeper(presence=PresenceStore(redis, ttl_seconds=30,
                                                      namespace=presence_namespace(settings.socketio_channel)),
                               emitter=emitter,
                               interval_seconds=settings.presence_sweep_interval_seconds)
    dead_letters = LazyPublisher(bootstrap=settings.kafka_bootstrap, client_id=settings.service_name)
    consumer = SupervisedConsumer(
        name="events",
        factory=lambda: ConsumerLoop(
            bootstrap=settings.kafka_bootstrap,
            topics=[settings.messaging_topic, settings.conversation_topic],
            group_id=settings.consumer_group,
            handler=event_handler(relay=relay),
            dead_letters=dead_letters,
        ),
    )

    async def kafka_ready() -> bool:
        return consumer.running.is_set()

    app = create_http_app(
        title="Eva realtime", readiness={"redis": lambda: redis_ready(redis), "kafka": kafka_ready}
    )
    http = HttpServer(app, host=settings.http_host, port=settings.http_port)
    consumer.start()
    presence.start()
    try:
        await http.start()
        logger.info("realtime started", extra={"http_port": settings.http_port})
        await wait_for_shutdown()
        logger.info("realtime stopping")
    finally:
        await http.stop()
        await presence.stop()
        await consumer.stop()  # finishes the record in hand, commits, leaves the group
        await dead_letters.stop()
        await emitter.close()
        await redis.aclose()


def run() -> None:
    settings = get_settings()
    bootstrap_process(settings)
    asyncio.run(serve(settings))
