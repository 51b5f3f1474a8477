"""Composition root of the n8n-integration service (on eva_common.runtime's skeleton): settings -> engine, Redis
(token revocations), Kafka producer, token verifier (auth's JWKS over gRPC), secret box, SSRF policy, the webhook use
cases (`self.webhooks`) and their gRPC server (WebhookService, EVA_GRPC_PORT), the fan-out, the delivery worker;
workers: the outbox relay, the events consumer (fan-out), the delivery worker and the backlog sampler. Nothing
connects at import time or here.

The HTTP port serves the `/n8n/*` API (`api.py`, its OpenAPI at `/n8n/docs`) besides `/healthz`, `/readyz` and
`/metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

from eva_common.audit import AuditRecorder
from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.housekeeping import Retention
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxRelay
from eva_common.redis import redis_ready
from eva_common.runtime import Periodic, ServiceApp, Worker, run_service

from n8n_service.api import build_api, n8n_router
from n8n_service.delivery import DeliveryWorker, sample_backlog
from n8n_service.fanout import FanOut
from n8n_service.grpc_server import SERVICE_NAME, WebhookServicer, registrar
from n8n_service.handlers import DomainEventsHandler
from n8n_service.retry import PausePolicy, RetryPolicy
from n8n_service.sealing import SEALING_SCOPE
from n8n_service.sender import WebhookSender
from n8n_service.service import WebhookService
from n8n_service.settings import Settings, get_settings
from n8n_service.ssrf import Resolver, UrlPolicy, system_resolver


class N8nApp(ServiceApp):
    """Everything the process runs, built but not started. `resolver` (DNS answers) and `verifier` are injectable
    for tests; by default tokens are verified against auth's JWKS over gRPC and the revocation times in Redis."""

    def __init__(self, settings: Settings, *, resolver: Resolver = system_resolver,
                 verifier: TokenVerifier | None = None) -> None:
        super().__init__(settings)
        self.engine = engine = self.postgres(settings)
        self.sessions = session_factory(engine)
        redis = self.redis(settings)
        self.publisher = publisher = self.kafka_publisher(settings)
        auth_channel = create_channel(settings.auth_grpc_target)
        self.on_close("auth channel", auth_channel.close)
        if verifier is None:
            verifier = TokenVerifier(jwks_source=grpc_jwks_source(lambda: auth_channel), issuer=settings.jwt_issuer,
                                     audience=settings.jwt_audience, revocations=RedisRevocations(redis))
        secrets = settings.secret_box(scope=SEALING_SCOPE)
        policy = UrlPolicy.of(allow_http=settings.webhook_allow_http,
                              allowed_networks=settings.webhook_allow_private_networks)
        audit = AuditRecorder(topic=settings.audit_events_topic)
        self.webhooks = WebhookService(sessions=self.sessions, secrets=secrets, policy=policy, audit=audit,
                                       max_age_seconds=settings.webhook_max_age_seconds, resolver=resolver)
        self.grpc_server = GrpcServer(registrars=[registrar(WebhookServicer(webhooks=self.webhooks))],
                                      service_names=[SERVICE_NAME], verifier=verifier, host=settings.grpc_host,
                                      port=settings.grpc_port)
        self.fanout = FanOut(sessions=self.sessions, consumer_name=settings.consumer_group,
                             max_age_seconds=settings.webhook_max_age_seconds,
                             log_retention_seconds=settings.n8n_events_retention_seconds,
                             on_queued=lambda: self.delivery.wake())
        events = DomainEventsHandler(fanout=self.fanout)
        self.consumer = self.kafka_consumer(
            settings, topics=[settings.messaging_events_topic, settings.conversation_events_topic],
            group_id=settings.consumer_group, handler=events, batch_handler=events.batch)
        self.sender = WebhookSender(policy=policy, timeout_seconds=settings.webhook_timeout_seconds,
                                    resolver=resolver, ca_bundle=settings.webhook_ca_bundle)
        self.on_close("webhook sender", self.sender.close)
        self.delivery = DeliveryWorker(
            sessions=self.sessions, sender=self.sender, secrets=secrets,
            retry=RetryPolicy(base_seconds=settings.webhook_retry_base_seconds,
                              cap_seconds=settings.webhook_retry_max_seconds, jitter=settings.webhook_retry_jitter,
                              max_age_seconds=settings.webhook_max_age_seconds),
            pause=PausePolicy(after_failures=settings.webhook_pause_after_failures,
                              min_failing_seconds=settings.webhook_pause_min_failing_seconds),
            audit=audit, integration_topic=settings.integration_events_topic,
            batch_size=settings.webhook_batch_size, concurrency=settings.webhook_concurrency,
            poll_seconds=settings.webhook_poll_seconds,
            # an attempt takes at most the timeout (plus the DNS answer): the lease outlasts it with room to spare
            lease_seconds=2 * settings.webhook_timeout_seconds + 30,
        )
        self.backlog = Periodic(lambda: sample_backlog(self.sessions),
                                interval_seconds=settings.webhook_stats_interval_seconds, run_at_start=True)
        self.relay = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=settings.outbox_poll_seconds,
                                 retention=Retention.of(settings))
        self.n8n_api = build_api(self, settings, sessions=self.sessions, redis=redis, auth_channel=auth_channel,
                                 verifier=verifier)  # the /n8n API
        self.http_app = create_http_app(
            title="Eva n8n integration",
            routers=[n8n_router(self.n8n_api)], docs=True, docs_prefix="/n8n",
            readiness=self.readiness(postgres=lambda: database_ready(engine),
                                     redis=lambda: redis_ready(redis),
                                     kafka=lambda: publisher.ready(settings.integration_events_topic)),
        )

    @property
    def grpc_port(self) -> int:
        assert self.grpc_server is not None
        port: int = self.grpc_server.port
        return port

    def workers(self) -> Mapping[str, Worker]:
        return {"outbox_relay": self.relay, "events_consumer": self.consumer, "webhook_delivery": self.delivery,
                "webhook_backlog": self.backlog}


def run() -> None:
    run_service(get_settings, N8nApp, name="n8n-integration")
