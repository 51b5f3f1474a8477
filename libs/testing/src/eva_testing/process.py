"""A deployable as the stack runs it: `python -m <module>` configured only by EVA_* variables, checked through its
public surface (health, readiness, metrics, gRPC health) and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eva_testing.waiting import eventually


def process_env(**eva: str) -> dict[str, str]:
    """This process's environment without any EVA_* variable, plus `eva` (`DATABASE_URL=…` → `EVA_DATABASE_URL`)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("EVA_")}
    return {**base, **{f"EVA_{key}": value for key, value in eva.items()}}


async def check_serves_and_stops(
    module: str, env: Mapping[str, str], *, http_port: int, readiness: Mapping[str, str],
    grpc_port: int | None = None, grpc_service: str | None = None, metric: str = "eva_http_requests_total",
    timeout: float = 30.0,
) -> list[str]:
    """Starts the deployable, waits until /readyz answers 200 with exactly `readiness`, checks /healthz, /metrics
    (`metric` is exported) and the gRPC health of `grpc_service`, sends SIGTERM and expects exit code 0. Returns the
    messages of its JSON log lines."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=dict(env),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:
            async def ready() -> httpx.Response | None:
                if process.returncode is not None:
                    raise AssertionError(f"{module} exited with {process.returncode}")
                try:
                    response = await http.get("/readyz")
                except httpx.TransportError:
                    return None
                return response if response.status_code == 200 else None

            answer = await eventually(ready, timeout=timeout)
            assert answer.json()["checks"] == dict(readiness)
            assert (await http.get("/healthz")).status_code == 200
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and metric in metrics.text
        if grpc_port is not None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                health = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=grpc_service or ""), timeout=5)
                assert health.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=timeout) == 0
        logs = (await process.stderr.read()).decode().splitlines() if process.stderr else []
        messages: list[str] = []
        for line in logs:
            if line.startswith("{"):
                record: dict[str, Any] = json.loads(line)
                messages.append(str(record.get("msg")))
        assert "service started" in messages and "service stopped" in messages, messages
        return messages
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
