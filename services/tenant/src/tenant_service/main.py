"""The tenant service's composition root (on eva_common.runtime's skeleton): settings -> engine, Redis, sealing
keys, token verifier (auth's JWKS over gRPC, revocation times in Redis), gRPC server and HTTP health/metrics;
workers: the outbox and the usage and audit consumers. Nothing connects before start()."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.housekeeping import Retention
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxRelay
from eva_common.redis import redis_ready
from eva_common.runtime import ServiceApp, Worker, run_service

from tenant_service.api_keys.service import ApiKeyService
from tenant_service.audit_log.service import AuditLogService
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.grpc_server import SERVICE_NAME, TenantServicer, registrar
from tenant_service.handlers import AuditEventsHandler, MessagingEventsHandler
from tenant_service.service import TenantService
from tenant_service.settings import Settings, get_settings
from tenant_service.usage.service import UsageService

logger = logging.getLogger("tenant.main")


class TenantApp(ServiceApp):
    """Everything the process runs, built but not started (nothing connects before start()). `verifier` is
    injectable for tests; by default tokens are checked against auth's JWKS and the revocation times in Redis."""

    def __init__(self, settings: Settings, *, verifier: TokenVerifier | None = None) -> None:
        super().__init__(settings)
        self.engine = engine = self.postgres(settings)
        sessions = session_factory(engine)
        redis = self.redis(settings)
        revocations = RedisRevocations(redis)
        lookup = LookupHasher(key=settings.lookup_key_bytes())
        self.service = TenantService(
            sessions=sessions,
            secrets=SecretBox(keys=settings.encryption_key_bytes(), active_key_id=settings.encryption_active_key),
            lookup=lookup,
            events_topic=settings.tenant_events_topic,
            audit_topic=settings.audit_events_topic,
        )
        self.api_keys = ApiKeyService(sessions=sessions, lookup=lookup, revocations=revocations,
                                      events_topic=settings.tenant_events_topic,
                                      audit_topic=settings.audit_events_topic)
        self.usage = UsageService(sessions=sessions, consumer=settings.usage_consumer_group)
        self.audit_log = AuditLogService(sessions=sessions, platform_slug=settings.platform_tenant_slug)
        if verifier is None:
            channel = create_channel(settings.auth_grpc_target)
            self.on_close("auth channel", channel.close)
            verifier = TokenVerifier(
                jwks_source=grpc_jwks_source(lambda: channel, timeout=settings.grpc_deadline_seconds),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                revocations=revocations,
            )
        publisher = self.kafka_publisher(settings)  # the outbox's events and the consumers' dead letters
        self.outbox = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=settings.outbox_poll_seconds,
                                  retention=Retention.of(settings))
        message_events = MessagingEventsHandler(usage=self.usage)
        self.usage_consumer = self.kafka_consumer(settings, topics=[settings.messaging_events_topic],
                                                  group_id=settings.usage_consumer_group, handler=message_events,
                                                  batch_handler=message_events.batch)
        self.audit_consumer = self.kafka_consumer(settings, topics=[settings.audit_events_topic],
                                                  group_id=settings.audit_consumer_group,
                                                  handler=AuditEventsHandler(audit_log=self.audit_log))
        self.grpc_server = GrpcServer(
            registrars=[registrar(TenantServicer(service=self.service, api_keys=self.api_keys, usage=self.usage,
                                                 audit_log=self.audit_log))],
            service_names=[SERVICE_NAME],
            verifier=verifier,
            host=settings.grpc_host,
            port=settings.grpc_port,
        )
        self.http_app = create_http_app(
            title="eva-tenant",
            readiness=self.readiness(postgres=lambda: database_ready(engine), redis=lambda: redis_ready(redis),
                                     kafka=lambda: publisher.ready(settings.tenant_events_topic)),
        )

    def workers(self) -> Mapping[str, Worker]:
        return {"outbox": self.outbox, "usage_consumer": self.usage_consumer, "audit_consumer": self.audit_consumer}


def run() -> None:
    run_service(get_settings, TenantApp, name="tenant")
