"""Composition root of the webhook-ingest service (on eva_common.runtime's skeleton): settings -> clients -> use
cases -> the HTTP app (Meta's webhook); workers: the delivery recorder and the outcome consumer."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from eva_common.auth import ServiceTokenProvider
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.redis import redis_ready
from eva_common.runtime import ServiceApp, Worker, run_service
from eva_common.settings import ConfigurationError
from pydantic import SecretStr

from webhook_ingest_service.api import create_app
from webhook_ingest_service.handlers import (
    outcome_batch_handler,
    outcome_handler,
    received_batch_handler,
    received_handler,
)
from webhook_ingest_service.ratelimit import RedisFailureLimiter
from webhook_ingest_service.repository import WebhookEventRepository
from webhook_ingest_service.service import WebhookIngest
from webhook_ingest_service.settings import Settings, get_settings
from webhook_ingest_service.tenants import CachedTenantDirectory, GrpcTenantDirectory

logger = logging.getLogger(__name__)


class IngestApp(ServiceApp):
    """Everything the process runs, built but not started."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if settings.service_client_secret is None:
            raise ConfigurationError("EVA_SERVICE_CLIENT_SECRET is required (tenant look-ups need a service token)")
        engine = self.postgres(settings)
        sessions = session_factory(engine)
        redis = self.redis(settings)
        auth_channel = create_channel(settings.auth_grpc_target)
        self.on_close("auth channel", auth_channel.close)
        tenant_channel = create_channel(settings.tenant_grpc_target)
        self.on_close("tenant channel", tenant_channel.close)
        tokens = ServiceTokenProvider(
            channel_factory=lambda: auth_channel,
            service_name=settings.service_name,
            client_secret=settings.service_client_secret.get_secret_value(),
            timeout=settings.tenant_lookup_timeout_seconds,
        )
        tenants = CachedTenantDirectory(
            inner=GrpcTenantDirectory(
                channel=tenant_channel, token=tokens.token, timeout=settings.tenant_lookup_timeout_seconds
            ),
            ttl=settings.tenant_cache_seconds,
            negative_ttl=settings.tenant_negative_cache_seconds,
        )
        publisher = self.kafka_publisher(settings)  # deliveries get 503 until the broker answers
        repository = WebhookEventRepository(sessions=sessions)
        ingest = WebhookIngest(
            tenants=tenants,
            publisher=publisher,
            unrouted=repository,
            limiter=RedisFailureLimiter(redis=redis, limit=settings.unverified_requests_per_minute),
            topic=settings.webhooks_topic,
            platform_app_secret=_secret(settings.platform_app_secret),
            platform_verify_token=_secret(settings.platform_verify_token),
            ack_timeout_seconds=settings.kafka_ack_timeout_seconds,
            retry_after_seconds=settings.retry_after_seconds,
        )
        self.http_app = create_app(
            ingest=ingest,
            readiness=self.readiness(
                postgres=lambda: database_ready(engine),
                redis=lambda: redis_ready(redis),
                kafka=lambda: publisher.ready(settings.webhooks_topic),
            ),
            max_body_bytes=settings.max_body_bytes,
        )
        self.recorder = self.kafka_consumer(
            settings, topics=[settings.webhooks_topic], group_id=settings.recorder_group,
            handler=received_handler(log=repository), batch_handler=received_batch_handler(log=repository))
        self.outcomes = self.kafka_consumer(
            settings, topics=[settings.outcomes_topic], group_id=settings.outcomes_group,
            handler=outcome_handler(log=repository), batch_handler=outcome_batch_handler(log=repository))

    def workers(self) -> Mapping[str, Worker]:
        return {"recorder": self.recorder, "outcomes": self.outcomes}


def _secret(value: SecretStr | None) -> str | None:
    return (value.get_secret_value() or None) if value is not None else None


def run() -> None:
    run_service(get_settings, IngestApp, name="webhook-ingest")
