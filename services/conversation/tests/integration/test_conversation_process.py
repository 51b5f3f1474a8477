"""The start-up contract: `python -m conversation_service` configured only by EVA_* variables serves /healthz,
/readyz (its dependencies answer), /metrics and gRPC health, and exits cleanly on SIGTERM."""

from __future__ import annotations

import uuid

import pytest
from eva_events.topics import dlq
from eva_testing.infra import free_port
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.process import check_serves_and_stops, process_env

pytestmark = pytest.mark.integration


async def test_the_service_process_starts_reports_ready_and_stops_on_sigterm(infra, database) -> None:
    events_topic, messaging_topic = unique_topic("conversation-events"), unique_topic("messaging-events")
    await create_topics(infra.kafka_bootstrap, events_topic, messaging_topic, dlq(messaging_topic))
    http_port, grpc_port = free_port(), free_port()
    env = process_env(
        DATABASE_URL=database.app_url, KAFKA_BOOTSTRAP=infra.kafka_bootstrap, REDIS_URL=infra.redis_url,
        HTTP_PORT=str(http_port), GRPC_PORT=str(grpc_port),
        AUTH_GRPC_TARGET="127.0.0.1:9",  # tokens are verified lazily; no call is made in this test
        CONVERSATION_EVENTS_TOPIC=events_topic, MESSAGING_EVENTS_TOPIC=messaging_topic,
        CONSUMER_GROUP=f"conversation-process-{uuid.uuid4().hex[:8]}", ENVIRONMENT="test", SHUTDOWN_GRACE_SECONDS="1",
    )
    await check_serves_and_stops(
        "conversation_service", env, http_port=http_port, grpc_port=grpc_port,
        grpc_service="eva.conversation.v1.ConversationService", metric="eva_kafka_consumed_total",
        readiness={"postgres": "ok", "redis": "ok", "kafka": "ok", "workers": "ok"},
    )
