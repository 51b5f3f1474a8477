"""The composition root: settings -> engine, Kafka publisher, token verifier, service token, conversation and tenant
clients, media store, use cases, gRPC server, HTTP app; workers: the outbox relay, the webhook consumer, the media
worker and the parked-status expiry (on eva_common.runtime's skeleton).
Nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

import httpx
from eva_common.admission import AdmissionGate
from eva_common.auth import ServiceTokenProvider, TokenVerifier, grpc_jwks_source
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.housekeeping import Retention
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxRelay
from eva_common.redis import redis_ready
from eva_common.runtime import Periodic, ServiceApp, Worker, run_service
from eva_common.settings import ConfigurationError, require_real_secret

from messaging_service.clients import ConversationClient, TenantCredentials, TenantDirectory, TokenSource
from messaging_service.governor import SendGovernor
from messaging_service.graph_send import GraphSendClient
from messaging_service.grpc_server import SERVICE_NAME, MessagingServicer, registrar
from messaging_service.handlers import WebhookDeliveryHandler
from messaging_service.inbound import WebhookProcessor
from messaging_service.media_store import LocalMediaStore, MediaStore
from messaging_service.media_worker import GraphMediaClient, MediaWorker
from messaging_service.meta_media import MetaMedia
from messaging_service.parked_expiry import ParkedStatusExpiry
from messaging_service.profiles import CachedQuotas, SendingProfiles
from messaging_service.reading import ReadingService
from messaging_service.s3_media_store import S3Config, S3MediaStore
from messaging_service.sender import OutboundSender
from messaging_service.sending import SendingService
from messaging_service.service import MessagingService
from messaging_service.settings import Settings, get_settings
from messaging_service.template_sync import (
    GraphTemplateClient,
    TemplateSyncer,
    TemplateWebhooks,
)
from messaging_service.templates import TemplateReader
from messaging_service.tenant_events import TenantEventsHandler
from messaging_service.uploads import MediaUploads

logger = logging.getLogger(__name__)


class MessagingApp(ServiceApp):
    """Everything the process runs. Build it inside the event loop; `start()`, then `stop()`.

    `verifier` and `tokens` are injectable for tests; by default tokens are verified against auth's JWKS and this
    service's own token comes from auth (EVA_SERVICE_NAME + EVA_SERVICE_CLIENT_SECRET), both over gRPC.
    """

    def __init__(
        self, settings: Settings, *, verifier: TokenVerifier | None = None, tokens: TokenSource | None = None,
        credentials: TenantDirectory | None = None, http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(settings)
        if verifier is None or tokens is None:
            auth_channel = create_channel(settings.auth_grpc_target)
            self.on_close("auth channel", auth_channel.close)
            if verifier is None:
                verifier = TokenVerifier(
                    jwks_source=grpc_jwks_source(lambda: auth_channel),
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                )
            if tokens is None:
                try:
                    secret = require_real_secret("EVA_SERVICE_CLIENT_SECRET", settings.service_client_secret)
                except ValueError as error:
                    raise ConfigurationError(str(error)) from error
                tokens = ServiceTokenProvider(
                    channel_factory=lambda: auth_channel,
                    service_name=settings.service_name,
                    client_secret=secret.get_secret_value(),
                    timeout=settings.grpc_deadline_seconds,
                )
        conversation_channel = create_channel(settings.conversation_grpc_target)
        self.on_close("conversation channel", conversation_channel.close)
        self.conversations = ConversationClient(
            channel=conversation_channel, tokens=tokens, timeout=settings.grpc_deadline_seconds
        )
        if credentials is None:
            tenant_channel = create_channel(settings.tenant_grpc_target)
            self.on_close("tenant channel", tenant_channel.close)
            credentials = TenantCredentials(channel=tenant_channel, tokens=tokens,
                                            timeout=settings.grpc_deadline_seconds)
        self.engine = self.postgres(settings)
        self.sessions = session_factory(self.engine)
        self.publisher = self.kafka_publisher(settings)
        # Message templates: the Graph listing (its own client and timeout), SyncTemplates and ListTemplates, Meta's
        # template webhooks, the periodic sync and the tenant-events consumer that registers tenants.
        self.template_http = httpx.AsyncClient(transport=http_transport,
                                               timeout=settings.template_graph_timeout_seconds)
        self.on_close("template graph http client", self.template_http.aclose)
        self.template_syncer = TemplateSyncer(
            sessions=self.sessions, credentials=credentials,
            graph=GraphTemplateClient(
                http=self.template_http, graph_url=settings.whatsapp_graph_url,
                api_version=settings.whatsapp_api_version, timeout_seconds=settings.template_graph_timeout_seconds,
                attempts=settings.template_graph_attempts, backoff_seconds=settings.template_graph_backoff_seconds),
            events_topic=settings.messaging_events_topic, interval_seconds=settings.template_sync_interval_seconds,
            batch_size=settings.template_sync_batch)
        self.template_reader = TemplateReader(sessions=self.sessions)
        self.template_webhooks = TemplateWebhooks(sessions=self.sessions, syncer=self.template_syncer,
                                                  events_topic=settings.messaging_events_topic)
        self.template_sync_job = Periodic(self.template_syncer.run_once,
                                          interval_seconds=settings.template_sync_interval_seconds, run_at_start=True)
        self.processor = WebhookProcessor(
            sessions=self.sessions,
            resolver=self.conversations,
            events_topic=settings.messaging_events_topic,
            outcomes_topic=settings.webhook_outcomes_topic,
            resolve_concurrency=settings.webhook_concurrency,
            templates=self.template_webhooks,
        )
        self.s3_media_store = s3_media_store(settings)
        self.media_store: MediaStore = self.s3_media_store or LocalMediaStore(settings.media_root)
        if self.s3_media_store is not None:
            self.on_close("s3 media store", self.s3_media_store.close)
        self.service = MessagingService(
            sessions=self.sessions, conversations=self.conversations, media_store=self.media_store)
        self.uploads = MediaUploads(sessions=self.sessions, store=self.media_store)
        self.http_client = httpx.AsyncClient(
            transport=http_transport, timeout=settings.media_download_timeout_seconds, follow_redirects=True)
        self.on_close("graph http client", self.http_client.aclose)
        self.media_worker = MediaWorker(
            sessions=self.sessions,
            credentials=credentials,
            graph=GraphMediaClient(http=self.http_client, graph_url=settings.whatsapp_graph_url,
                                   api_version=settings.whatsapp_api_version),
            store=self.media_store,
            events_topic=settings.messaging_events_topic,
            max_attempts=settings.media_max_attempts,
            backoff_seconds=settings.media_backoff_seconds,
            poll_seconds=settings.media_poll_seconds,
        )
        self.redis_client = self.redis(settings)
        self.profiles = SendingProfiles(credentials, ttl=settings.profile_cache_seconds)
        self.quotas = CachedQuotas(credentials, ttl=settings.quota_cache_seconds)
        self.governor = SendGovernor(self.redis_client, headroom=settings.send_rate_headroom)
        graph_send = GraphSendClient(http=self.http_client, graph_url=settings.whatsapp_graph_url,
                                     api_version=settings.whatsapp_api_version, timeout=settings.send_timeout_seconds)
        self.sender = OutboundSender(
            sessions=self.sessions, profiles=self.profiles, graph=graph_send, governor=self.governor,
            events_topic=settings.messaging_events_topic, health=credentials,
            media=MetaMedia(sessions=self.sessions, http=self.http_client, graph_url=settings.whatsapp_graph_url,
                            api_version=settings.whatsapp_api_version, store=self.media_store),
            default_rate=settings.send_rate_per_number, coexistence_rate=settings.send_rate_coexistence,
            max_attempts=settings.send_max_attempts, backoff_seconds=settings.send_backoff_seconds,
            backoff_max_seconds=settings.send_backoff_max_seconds, lease_seconds=settings.send_lease_seconds,
            reconcile_seconds=settings.send_reconcile_seconds, concurrency=settings.send_concurrency,
            batch=settings.send_batch, poll_seconds=settings.send_poll_seconds)
        self.sending = SendingService(
            sessions=self.sessions, conversations=self.conversations, profiles=self.profiles, quotas=self.quotas,
            events_topic=settings.messaging_events_topic,
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds), wake=self.sender.wake)
        self.reading = ReadingService(
            sessions=self.sessions, conversations=self.conversations, profiles=self.profiles, graph=graph_send,
            governor=self.governor, redis=self.redis_client, events_topic=settings.messaging_events_topic,
            default_rate=settings.send_rate_per_number, coexistence_rate=settings.send_rate_coexistence,
            typing_interval_seconds=settings.typing_interval_seconds)
        self.parked_expiry = Periodic(
            ParkedStatusExpiry(sessions=self.sessions, max_age_seconds=settings.parked_status_retention_seconds,
                               batch_size=settings.parked_status_expiry_batch).run_once,
            interval_seconds=settings.parked_status_expiry_interval_seconds, run_at_start=True)
        self.grpc_server = GrpcServer(
            registrars=[registrar(MessagingServicer(
                service=self.service, sending=self.sending, reading=self.reading, uploads=self.uploads,
                templates=self.template_reader, template_syncer=self.template_syncer,
                admission=AdmissionGate("send", limit=settings.accept_concurrency,
                                        max_wait=settings.accept_wait_seconds,
                                        min_time_remaining=settings.accept_min_deadline_seconds)))],
            service_names=[SERVICE_NAME],
            verifier=verifier,
            host=settings.grpc_host,
            port=settings.grpc_port,
        )
        self.relay = OutboxRelay(engine=self.engine, publisher=self.publisher, retention=Retention.of(settings))
        deliveries = WebhookDeliveryHandler(processor=self.processor)
        self.consumer = self.kafka_consumer(settings, topics=[settings.webhooks_topic],
                                            group_id=settings.consumer_group, handler=deliveries,
                                            batch_handler=deliveries.batch)
        self.tenant_events_consumer = self.kafka_consumer(
            settings, topics=[settings.tenant_events_topic], group_id=settings.tenant_events_consumer_group,
            handler=TenantEventsHandler(syncer=self.template_syncer))
        readiness = self.readiness(postgres=lambda: database_ready(self.engine),
                                   redis=lambda: redis_ready(self.redis_client),
                                   kafka=lambda: self.publisher.ready(settings.messaging_events_topic))
        if self.s3_media_store is not None:
            readiness["media_store"] = self.s3_media_store.ready  # HeadBucket
        self.http_app = create_http_app(title="messaging", readiness=readiness)

    @property
    def grpc_port(self) -> int:
        assert self.grpc_server is not None
        port: int = self.grpc_server.port
        return port

    async def open(self) -> None:
        if self.s3_media_store is not None:
            await self.s3_media_store.open()

    def workers(self) -> Mapping[str, Worker]:
        return {"outbox_relay": self.relay, "webhook_consumer": self.consumer, "media_worker": self.media_worker,
                "sender": self.sender, "parked_status_expiry": self.parked_expiry,
                "template_sync": self.template_sync_job, "tenant_events_consumer": self.tenant_events_consumer}


def s3_media_store(settings: Settings) -> S3MediaStore | None:
    """The S3-compatible media store when EVA_MEDIA_STORE=s3 (start() opens its client, stop() closes it)."""
    if settings.media_store != "s3":
        return None
    return S3MediaStore(S3Config(
        bucket=settings.media_s3_bucket, endpoint_url=settings.media_s3_endpoint_url, region=settings.media_s3_region,
        access_key_id=settings.media_s3_access_key_id, secret_access_key=settings.media_s3_secret_access_key,
        prefix=settings.media_s3_prefix, path_style=settings.media_s3_path_style, checksums=settings.media_s3_checksums,
        multipart_threshold=settings.media_s3_multipart_threshold_bytes, part_size=settings.media_s3_part_size_bytes,
        read_timeout_seconds=settings.media_s3_timeout_seconds, spool_dir=settings.media_spool_dir))


def run() -> None:
    run_service(get_settings, MessagingApp, name="messaging")
