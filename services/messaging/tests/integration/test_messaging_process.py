"""The start-up contract: `python -m messaging_service` configured only by EVA_* variables serves /healthz,
/readyz (its dependencies answer), /metrics and gRPC health, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import pytest
from eva_events.topics import dlq
from eva_testing.infra import free_port
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.process import check_serves_and_stops, process_env

pytestmark = pytest.mark.integration


async def test_the_service_process_starts_reports_ready_and_stops_on_sigterm(infra, database) -> None:
    webhooks, events, outcomes = (unique_topic("wa-webhooks"), unique_topic("messaging-events"),
                                  unique_topic("webhook-outcomes"))
    tenant_events = unique_topic("tenant-events")
    await create_topics(infra.kafka_bootstrap, webhooks, events, outcomes, tenant_events, dlq(webhooks),
                        dlq(tenant_events))
    http_port, grpc_port = free_port(), free_port()
    env = process_env(
        DATABASE_URL=database.app_url, KAFKA_BOOTSTRAP=infra.kafka_bootstrap, REDIS_URL=infra.redis_url,
        HTTP_PORT=str(http_port), GRPC_PORT=str(grpc_port), TENANT_EVENTS_TOPIC=tenant_events,
        # auth and conversation are called lazily (tokens, deliveries); no call is made in this test
        AUTH_GRPC_TARGET="127.0.0.1:9", CONVERSATION_GRPC_TARGET="127.0.0.1:9", SERVICE_NAME="messaging",
        SERVICE_CLIENT_SECRET="a-real-looking-client-secret", WEBHOOKS_TOPIC=webhooks, MESSAGING_EVENTS_TOPIC=events,
        WEBHOOK_OUTCOMES_TOPIC=outcomes, CONSUMER_GROUP=f"messaging-process-{uuid.uuid4().hex[:8]}",
        ENVIRONMENT="test", SHUTDOWN_GRACE_SECONDS="1",
    )
    await check_serves_and_stops(
        "messaging_service", env, http_port=http_port, grpc_port=grpc_port,
        grpc_service="eva.messaging.v1.MessagingService", metric="eva_kafka_consumed_total",
        readiness={"postgres": "ok", "redis": "ok", "kafka": "ok", "workers": "ok"},
    )


async def test_the_service_refuses_to_start_without_a_real_client_secret(infra, database) -> None:
    env = process_env(DATABASE_URL=database.app_url, KAFKA_BOOTSTRAP=infra.kafka_bootstrap,
                      SERVICE_CLIENT_SECRET="changeme")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "messaging_service", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    [report] = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert report["msg"] == "invalid configuration"
    assert report["problems"][0]["field"] == "service_client_secret"
    assert "EVA_SERVICE_CLIENT_SECRET is missing or a placeholder" in report["problems"][0]["problem"]
    assert b"changeme" not in stderr  # the offending value is not echoed
