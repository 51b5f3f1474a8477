"""The start-up contract: `python -m n8n_service` configured only by EVA_* variables serves /healthz, /readyz (its
dependencies answer: PostgreSQL, Redis, Kafka, its workers), /metrics and the gRPC health of WebhookService on
EVA_GRPC_PORT, and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import uuid

import pytest
from eva_events.topics import dlq
from eva_testing.infra import free_port
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.process import check_serves_and_stops, process_env

pytestmark = pytest.mark.integration


async def test_the_service_process_serves_grpc_reports_ready_and_stops_on_sigterm(infra, database, kit) -> None:
    messaging, conversation = unique_topic("messaging-events"), unique_topic("conversation-events")
    audit, integration = unique_topic("audit-events"), unique_topic("integration-events")
    await create_topics(infra.kafka_bootstrap, messaging, conversation, dlq(messaging), dlq(conversation), audit,
                        integration)
    http_port, grpc_port = free_port(), free_port()
    settings = kit.settings_for(database, infra)
    env = process_env(
        DATABASE_URL=database.app_url, KAFKA_BOOTSTRAP=infra.kafka_bootstrap, REDIS_URL=infra.redis_url,
        HTTP_PORT=str(http_port), GRPC_PORT=str(grpc_port),
        AUTH_GRPC_TARGET="127.0.0.1:9",  # tokens are verified lazily; no call is made in this test
        SERVICE_CLIENT_SECRET="n8n-integration-process-test-secret",
        ENCRYPTION_KEYS=json.dumps({key: value.get_secret_value() for key, value in settings.encryption_keys.items()}),
        ENCRYPTION_ACTIVE_KEY=settings.encryption_active_key,
        MESSAGING_EVENTS_TOPIC=messaging, CONVERSATION_EVENTS_TOPIC=conversation, AUDIT_EVENTS_TOPIC=audit,
        INTEGRATION_EVENTS_TOPIC=integration, CONSUMER_GROUP=f"n8n-process-{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test", SHUTDOWN_GRACE_SECONDS="1",
    )
    await check_serves_and_stops(
        "n8n_service", env, http_port=http_port, grpc_port=grpc_port, grpc_service="eva.n8n.v1.WebhookService",
        readiness={"postgres": "ok", "redis": "ok", "kafka": "ok", "workers": "ok"},
    )
