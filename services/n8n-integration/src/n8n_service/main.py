"""Composition root of the n8n-integration service.

It serves the `/n8n/*` API for n8n automations on its own port (3003) and will deliver the tenants' signed
outbound webhooks; this first version runs the service with its database and Kafka producer wired and its health
endpoints telling the truth about them.
"""

from __future__ import annotations

import asyncio
import logging

from eva_common.db import create_engine, database_ready
from eva_common.http.app import create_http_app
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.runtime import HttpServer, bootstrap_process, wait_for_shutdown
from eva_events.topics import MESSAGING_EVENTS

from n8n_service.settings import Settings, get_settings

logger = logging.getLogger("n8n_service")


async def serve(settings: Settings) -> None:
    engine = create_engine(settings.database_url, pool_size=5)
    publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=settings.service_name)
    await publisher.start()
    app = create_http_app(
        title="Eva n8n integration",
        readiness={
            "postgres": lambda: database_ready(engine),
            "kafka": lambda: publisher.ready(MESSAGING_EVENTS),
        },
    )
    http = HttpServer(app, host=settings.http_host, port=settings.http_port)
    await http.start()
    logger.info("n8n-integration ready", extra={"port": settings.http_port})
    try:
        await wait_for_shutdown()
    finally:
        await http.stop()
        await publisher.stop()
        await engine.dispose()


def run() -> None:
    settings = get_settings()
    bootstrap_process(settings)
    asyncio.run(serve(settings))
