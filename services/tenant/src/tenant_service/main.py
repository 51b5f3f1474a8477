"""The tenant service's composition root: settings -> engine, Redis, sealing keys, token verifier (auth's JWKS
over gRPC, revocation times in Redis), outbox worker, the usage and audit consumers, gRPC server and HTTP
health/metrics; graceful shutdown on SIGTERM. Nothing connects before start()."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc
from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.kafka.consumer import ConsumerLoop, Handler
from eva_common.kafka.publisher import LazyPublisher
from eva_common.kafka.supervisor import SupervisedConsumer
from eva_common.outbox import OutboxWorker
from eva_common.redis import create_redis, redis_ready
from eva_common.runtime import HttpServer, bootstrap_process, load_settings, wait_for_shutdown
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tenant_service.api_keys.service import ApiKeyService
from tenant_service.audit_log.service import AuditLogService
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.grpc_server import SERVICE_NAME, TenantServicer, registrar
from tenant_service.handlers import AuditEventsHandler, MessagingEventsHandler
from tenant_service.service import TenantService
from tenant_service.settings import Settings, get_settings
from tenant_service.usage.service import UsageService

logger = logging.getLogger("tenant.main")


@dataclass
class Runtime:
    """Everything the process runs, built but not started (nothing connects before start())."""

    settings: Settings
    engine: AsyncEngine
    redis: Redis
    service: TenantService
    api_keys: ApiKeyService
    usage: UsageService
    audit_log: AuditLogService
    grpc_server: GrpcServer
    http_app: FastAPI
    outbox: OutboxWorker
    dead_letters: LazyPublisher
    consumers: list[SupervisedConsumer] = field(default_factory=list)
    auth_channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        self.outbox.start()
        for consumer in self.consumers:
            consumer.start()
        await self.grpc_server.start()

    async def stop(self) -> None:
        """Stops accepting calls, lets the running ones finish, stops the consumers and the outbox, then closes
        the connections."""
        grace = self.settings.shutdown_grace_seconds
        await self.grpc_server.stop(grace)
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        await self.outbox.stop(grace)
        await self.dead_letters.stop()
        if self.auth_channel is not None:
            await self.auth_channel.close()
        await self.redis.aclose()
        await self.engine.dispose()

    async def consumers_ready(self) -> bool:
        return all(consumer.running.is_set() for consumer in self.consumers)


def build(settings: Settings, *, verifier: TokenVerifier | None = None, events_topic: str | None = None) -> Runtime:
    """`verifier` is injectable for tests; by default tokens are checked against auth's JWKS and Redis.
    `events_topic` (kept for older callers) overrides settings.tenant_events_topic."""
    if events_topic is not None:
        settings = settings.model_copy(update={"tenant_events_topic": events_topic})
    engine = create_engine(settings.database_url.get_secret_value())
    sessions = session_factory(engine)
    redis = create_redis(settings.redis_url)
    revocations = RedisRevocations(redis)
    lookup = LookupHasher(key=settings.lookup_key_bytes())
    service = TenantService(
        sessions=sessions,
        secrets=SecretBox(keys=settings.encryption_key_bytes(), active_key_id=settings.encryption_active_key),
        lookup=lookup,
        events_topic=settings.tenant_events_topic,
        audit_topic=settings.audit_events_topic,
    )
    api_keys = ApiKeyService(sessions=sessions, lookup=lookup, revocations=revocations,
                             events_topic=settings.tenant_events_topic, audit_topic=settings.audit_events_topic)
    usage = UsageService(sessions=sessions, consumer=settings.usage_consumer_group)
    audit_log = AuditLogService(sessions=sessions, platform_slug=settings.platform_tenant_slug)
    auth_channel: grpc.aio.Channel | None = None
    if verifier is None:
        channel = auth_channel = create_channel(settings.auth_grpc_target)
        verifier = TokenVerifier(
            jwks_source=grpc_jwks_source(lambda: channel, timeout=settings.grpc_deadline_seconds),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=revocations,
        )
    outbox = OutboxWorker(
        engine=engine, bootstrap=settings.kafka_bootstrap, client_id=settings.service_name,
        poll_seconds=settings.outbox_poll_seconds, ready_topic=settings.tenant_events_topic,
    )
    dead_letters = LazyPublisher(bootstrap=settings.kafka_bootstrap, client_id=f"{settings.service_name}-dlq")

    def consumer(name: str, topic: str, group: str, handler: Handler) -> SupervisedConsumer:
        return SupervisedConsumer(name=name, factory=lambda: ConsumerLoop(
            bootstrap=settings.kafka_bootstrap, topics=[topic], group_id=group, handler=handler,
            dead_letters=dead_letters,
        ))

    consumers = [
        consumer("usage", settings.messaging_events_topic, settings.usage_consumer_group,
                 MessagingEventsHandler(usage=usage)),
        consumer("audit", settings.audit_events_topic, settings.audit_consumer_group,
                 AuditEventsHandler(audit_log=audit_log)),
    ]
    grpc_server = GrpcServer(
        registrars=[registrar(TenantServicer(service=service, api_keys=api_keys, usage=usage, audit_log=audit_log))],
        service_names=[SERVICE_NAME],
        verifier=verifier,
        host=settings.grpc_host,
        port=settings.grpc_port,
    )

    async def postgres_ready() -> bool:
        return await database_ready(engine)

    async def redis_answers() -> bool:
        return await redis_ready(redis)

    async def consumers_running() -> bool:
        return all(item.running.is_set() for item in consumers)

    http_app = create_http_app(
        title="eva-tenant",
        readiness={"postgres": postgres_ready, "redis": redis_answers, "kafka": outbox.ready,
                   "consumers": consumers_running},
    )
    return Runtime(
        settings=settings, engine=engine, redis=redis, service=service, api_keys=api_keys, usage=usage,
        audit_log=audit_log, grpc_server=grpc_server, http_app=http_app, outbox=outbox, dead_letters=dead_letters,
        consumers=consumers, auth_channel=auth_channel,
    )


async def serve(settings: Settings) -> None:
    runtime = build(settings)
    http = HttpServer(runtime.http_app, host=settings.http_host, port=settings.http_port)
    try:
        await runtime.start()
        await http.start()
        logger.info("tenant service started", extra={"grpc_port": runtime.grpc_server.port,
                                                     "http_port": settings.http_port})
        await wait_for_shutdown()
        logger.info("tenant service stopping")
    finally:
        await runtime.stop()
        await http.stop()
    logger.info("tenant service stopped")


def run() -> None:
    settings = load_settings(get_settings, "tenant")
    bootstrap_process(settings)
    asyncio.run(serve(settings))
