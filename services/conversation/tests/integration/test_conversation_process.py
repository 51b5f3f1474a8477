"""The start-up contract: `python -m conversation_service` configured only by EVA_* variables serves /healthz,
/readyz (its dependencies answer), /metrics and gRPC health, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid

import grpc
import httpx
import pytest
from eva_events.topics import dlq
from eva_testing.infra import free_port
from eva_testing.kafka import create_topics, unique_topic
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration


async def test_the_service_process_starts_reports_ready_and_stops_on_sigterm(infra, database, eventually) -> None:
    events_topic, messaging_topic = unique_topic("conversation-events"), unique_topic("messaging-events")
    await create_topics(infra.kafka_bootstrap, events_topic, messaging_topic, dlq(messaging_topic))
    http_port, grpc_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVA_")},
        "EVA_DATABASE_URL": database.app_url,
        "EVA_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "EVA_REDIS_URL": infra.redis_url,
        "EVA_HTTP_PORT": str(http_port),
        "EVA_GRPC_PORT": str(grpc_port),
        "EVA_AUTH_GRPC_TARGET": "127.0.0.1:9",  # tokens are verified lazily; no call is made in this test
        "EVA_CONVERSATION_EVENTS_TOPIC": events_topic,
        "EVA_MESSAGING_EVENTS_TOPIC": messaging_topic,
        "EVA_CONSUMER_GROUP": f"conversation-process-{uuid.uuid4().hex[:8]}",
        "EVA_ENVIRONMENT": "test",
        "EVA_SHUTDOWN_GRACE_SECONDS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conversation_service", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
            async def ready() -> httpx.Response | None:
                if process.returncode is not None:
                    raise AssertionError(f"the service exited with {process.returncode}")
                try:
                    response = await http.get("/readyz")
                except httpx.TransportError:
                    return None
                return response if response.status_code == 200 else None

            readiness = await eventually(ready, timeout=30)
            assert readiness.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok",
                                                 "workers": "ok"}
            assert (await http.get("/healthz")).status_code == 200
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and "eva_kafka_consumed_total" in metrics.text

        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="eva.conversation.v1.ConversationService"), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        assert code == 0
        logs = (await process.stderr.read()).decode().splitlines() if process.stderr else []
        messages = [json.loads(line)["msg"] for line in logs if line.startswith("{")]
        assert "service started" in messages and "service stopped" in messages
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
