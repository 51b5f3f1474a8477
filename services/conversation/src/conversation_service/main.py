"""The composition root: settings -> engine, Redis (token revocations), Kafka publisher, token verifier, auth
client (assignees), services, gRPC server, HTTP app, outbox relay and the messaging-events consumer; graceful
shutdown on SIGTERM. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import logging

from eva_common.audit import AuditRecorder
from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.kafka.consumer import ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.outbox import OutboxRelay
from eva_common.redis import create_redis, redis_ready
from eva_common.runtime import HttpServer, Workers, bootstrap_process, load_settings, serve_until_shutdown
from fastapi import FastAPI

from conversation_service.contacts import ContactService
from conversation_service.escalations import EscalationService
from conversation_service.grpc_server import SERVICE_NAME, ConversationServicer, registrar
from conversation_service.handlers import MessagingEventsHandler
from conversation_service.service import ConversationService
from conversation_service.settings import Settings, get_settings
from conversation_service.tags import TagService
from conversation_service.users import AuthUserDirectory

logger = logging.getLogger(__name__)


class ConversationApp:
    """Everything the process runs. Build it inside the event loop; `start()`, then `stop()`.

    `verifier` is injectable for tests; by default tokens are verified against auth's JWKS over gRPC and the
    revocation times in Redis. Assignees are checked at auth (EVA_AUTH_GRPC_TARGET) with the caller's token.
    """

    def __init__(self, settings: Settings, *, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        self.sessions = session_factory(self.engine)
        self.redis = create_redis(settings.redis_url)
        self.publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=settings.service_name)
        auth_channel = self._auth_channel = create_channel(settings.auth_grpc_target)
        if verifier is None:
            verifier = TokenVerifier(
                jwks_source=grpc_jwks_source(lambda: auth_channel),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                revocations=RedisRevocations(self.redis),
            )
        audit = AuditRecorder(topic=settings.audit_events_topic)
        self.service = ConversationService(
            sessions=self.sessions,
            events_topic=settings.conversation_events_topic,
            consumer_name=settings.consumer_group,
            users=AuthUserDirectory(channel=lambda: auth_channel, timeout=settings.grpc_deadline_seconds),
            audit=audit,
        )
        servicer = ConversationServicer(
            service=self.service,
            tags=TagService(sessions=self.sessions, events_topic=settings.conversation_events_topic, audit=audit),
            escalations=EscalationService(sessions=self.sessions, events_topic=settings.conversation_events_topic,
                                          audit=audit),
            contacts=ContactService(sessions=self.sessions, events_topic=settings.conversation_events_topic,
                                    audit=audit),
        )
        self.grpc_server = GrpcServer(
            registrars=[registrar(servicer)],
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
        self.workers = Workers()
        self.http_app: FastAPI = create_http_app(
            title="conversation",
            readiness={"postgres": self._postgres_ready, "redis": self._redis_ready, "kafka": self._kafka_ready,
                       "workers": self.workers.ready},
        )
        self._http: HttpServer | None = None

    @property
    def grpc_port(self) -> int:
        port: int = self.grpc_server.port
        return port

    async def _postgres_ready(self) -> bool:
        return await database_ready(self.engine)

    async def _redis_ready(self) -> bool:
        return await redis_ready(self.redis)

    async def _kafka_ready(self) -> bool:
        return await self.publisher.ready(self.settings.conversation_events_topic)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self.workers.tasks

    async def start(self, *, serve_http: bool = True) -> None:
        await self.publisher.start()
        await self.consumer.start()
        await self.grpc_server.start()
        self.workers.start(outbox_relay=self.relay.run(), messaging_events_consumer=self.consumer.run())
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
        await self.workers.wait(grace + 10)
        if self._http is not None:
            await self._http.stop()
        await self.publisher.stop()
        await self._auth_channel.close()
        await self.redis.aclose()
        await self.engine.dispose()
        logger.info("conversation service stopped")


async def serve(settings: Settings) -> int:
    return await serve_until_shutdown(ConversationApp(settings))


def run() -> None:
    settings = load_settings(get_settings, "conversation")
    bootstrap_process(settings)
    raise SystemExit(asyncio.run(serve(settings)))
