"""The composition root (on eva_common.runtime's skeleton): settings -> engine, Redis (token revocations), Kafka
publisher, token verifier, auth client (assignees), services, gRPC server, HTTP app; workers: the outbox relay and
the messaging-events consumer. Nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from eva_common.audit import AuditRecorder
from eva_common.auth import RedisRevocations, ServiceTokenProvider, TokenVerifier, grpc_jwks_source
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.housekeeping import Retention
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxRelay
from eva_common.redis import redis_ready
from eva_common.runtime import ServiceApp, Worker, run_service

from conversation_service.contacts import ContactService
from conversation_service.escalations import EscalationService
from conversation_service.grpc_server import SERVICE_NAME, ConversationServicer, registrar
from conversation_service.handlers import MessagingEventsHandler
from conversation_service.service import ConversationService
from conversation_service.settings import Settings, get_settings
from conversation_service.tags import TagService
from conversation_service.users import AuthUserDirectory, TokenSource

logger = logging.getLogger(__name__)


class ConversationApp(ServiceApp):
    """Everything the process runs. Build it inside the event loop; `start()`, then `stop()`.

    `verifier` is injectable for tests; by default tokens are verified against auth's JWKS over gRPC and the
    revocation times in Redis. Assignees are checked at auth (EVA_AUTH_GRPC_TARGET) with the caller's token, an API
    key's with this service's own token (`tokens`, injectable; from EVA_SERVICE_CLIENT_SECRET when set).
    """

    def __init__(self, settings: Settings, *, verifier: TokenVerifier | None = None,
                 tokens: TokenSource | None = None) -> None:
        super().__init__(settings)
        self.engine = engine = self.postgres(settings)
        self.sessions = session_factory(engine)
        redis = self.redis(settings)
        auth_channel = create_channel(settings.auth_grpc_target)
        self.on_close("auth channel", auth_channel.close)
        self.publisher = self.kafka_publisher(settings)
        if verifier is None:
            verifier = TokenVerifier(
                jwks_source=grpc_jwks_source(lambda: auth_channel),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                revocations=RedisRevocations(redis),
            )
        audit = AuditRecorder(topic=settings.audit_events_topic)
        self.service = ConversationService(
            sessions=self.sessions,
            events_topic=settings.conversation_events_topic,
            consumer_name=settings.consumer_group,
            users=AuthUserDirectory(channel=lambda: auth_channel, timeout=settings.grpc_deadline_seconds,
                                    service_tokens=tokens or _service_tokens(settings, lambda: auth_channel)),
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
        self.relay = OutboxRelay(engine=self.engine, publisher=self.publisher, retention=Retention.of(settings))
        message_events = MessagingEventsHandler(service=self.service)
        self.consumer = self.kafka_consumer(settings, topics=[settings.messaging_events_topic],
                                            group_id=settings.consumer_group, handler=message_events,
                                            batch_handler=message_events.batch)
        self.http_app = create_http_app(
            title="conversation",
            readiness=self.readiness(postgres=lambda: database_ready(engine),
                                     redis=lambda: redis_ready(redis),
                                     kafka=lambda: self.publisher.ready(settings.conversation_events_topic)),
        )

    @property
    def grpc_port(self) -> int:
        assert self.grpc_server is not None
        port: int = self.grpc_server.port
        return port

    def workers(self) -> Mapping[str, Worker]:
        return {"outbox_relay": self.relay, "messaging_events_consumer": self.consumer}


def _service_tokens(settings: Settings, channel: Callable[[], Any]) -> TokenSource | None:
    secret = settings.service_client_secret
    if secret is None:
        return None
    return ServiceTokenProvider(channel_factory=channel, service_name=settings.service_name,
                                client_secret=secret.get_secret_value(), timeout=settings.grpc_deadline_seconds)


def run() -> None:
    run_service(get_settings, ConversationApp, name="conversation")
