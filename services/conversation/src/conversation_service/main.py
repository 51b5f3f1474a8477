"""The composition root: settings -> engine, Kafka publisher, token verifier, service, gRPC server, HTTP app,
outbox relay and the messaging-events consumer; graceful shutdown on SIGTERM. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from eva_common.auth import TokenVerifier, grpc_jwks_source
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.kafka.consumer import ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.outbox import OutboxRelay
from eva_common.runtime import HttpServer, bootstrap_process, load_settings, serve_until_shutdown
from fastapi import FastAPI

from conversation_service.grpc_server import SERVICE_NAME, ConversationServicer, registrar
from conversation_service.handlers import MessagingEventsHandler
from conversation_service.service import ConversationService
from conversation_service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class ConversationApp:
    """Everything the process runs. Build it inside the event loop; `start()`, then `stop()`.

    `verifier` is injectable for tests; by default tokens are verified against auth's JWKS over gRPC.
    """

    def __init__(self, settings: Settings, *, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        self.sessions = session_factory(self.engine)
        self.publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=settings.service_name)
        self._auth_channel: grpc.aio.Channel | None = None
        if verifier is None:
            auth_channel = self._auth_channel = create_channel(settings.auth_grpc_target)
            verifier = TokenVerifier(
                jwks_source=grpc_jwks_source(lambda: auth_channel),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
        self.service = ConversationService(
            sessions=self.sessions,
            events_topic=settings.conversation_events_topic,
            consumer_name=settings.consumer_group,
        )
        self.grpc_server = GrpcServer(
            registrars=[registrar(ConversationServicer(service=self.service))],
            service_names=[SERVICE_NAME],
            verifier=verifier,
            host=settings.grpc_host,
            port=settings.grpc_port,
        )
        self.relay = OutboxRelay(engine=self.engine, publisher=self.publisher)
        self.consumer = ConsumerLoop(
            bootstrap=settings.kafka_bootstrap,
            topics=[settings.messaging_events_topic],
            group_id=settings.consumer_group,
            handler=MessagingEventsHandler(service=self.service),
            dead_letters=self.publisher,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.http_app: FastAPI = create_http_app(
            title="conversation",
            readiness={"postgres": self._postgres_ready, "kafka": self._kafka_ready, "workers": self._workers_ready},
        )
        self._http: HttpServer | None = None

    @property
    def grpc_port(self) -> int:
        port: int = self.grpc_server.port
        return port

    async def _postgres_ready(self) -> bool:
        return await database_ready(self.engine)

    async def _kafka_ready(self) -> bool:
        return await self.publisher.ready(self.settings.conversation_events_topic)

    async def _workers_ready(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    async def start(self, *, serve_http: bool = True) -> None:
        await self.publisher.start()
        await self.consumer.start()
        await self.grpc_server.start()
        self.tasks = [
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self.consumer.run(), name="messaging-events-consumer"),
        ]
        if serve_http:
            self._http = HttpServer(self.http_app, host=self.settings.http_host, port=self.settings.http_port)
            await self._http.start()
        logger.info("conversation service started", extra={"grpc_port": self.grpc_port,
                                                            "http_port": self.settings.http_port})

    async def stop(self) -> None:
        """Stops accepting RPCs and drains them, stops the consumer and relay, then closes connections."""
        grace = self.settings.shutdown_grace_seconds
        await self.grpc_server.stop(grace)
        await self.consumer.stop()
        await self.relay.stop()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=grace + 10)
            for task in pending:
                task.cancel()
            for task in self.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._http is not None:
            await self._http.stop()
        await self.publisher.stop()
        if self._auth_channel is not None:
            await self._auth_channel.close()
        await self.engine.dispose()
        logger.info("conversation service stopped")


async def serve(settings: Settings) -> int:
    return await serve_until_shutdown(ConversationApp(settings))


def run() -> None:
    settings = load_settings(get_settings, "conversation")
    bootstrap_process(settings)
    raise SystemExit(asyncio.run(serve(settings)))
