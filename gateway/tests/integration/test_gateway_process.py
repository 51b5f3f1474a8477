"""The start-up contract: `python -m gateway` configured only by EVA_* variables, health endpoints, the JWKS from
auth over gRPC, revocations and rate limits in Redis, X-Forwarded-For ignored from untrusted peers, and a clean exit
on SIGTERM that closes the open sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva_common.auth import RedisRevocations
from eva_testing.infra import free_port

pytestmark = pytest.mark.integration


async def test_python_m_gateway_serves_and_stops_on_sigterm(
    infra: Any, upstreams: Any, make_account: Callable[..., Any], sockets: Callable[[], Any], redis: Any
) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVA_")}
    env.update({
        "EVA_SERVICE_NAME": "gateway", "EVA_ENVIRONMENT": "test", "EVA_LOG_LEVEL": "INFO",
        "EVA_HTTP_HOST": "127.0.0.1", "EVA_HTTP_PORT": str(port), "EVA_REDIS_URL": infra.redis_url,
        "EVA_AUTH_GRPC_TARGET": upstreams.target, "EVA_TENANT_GRPC_TARGET": upstreams.target,
        "EVA_CONVERSATION_GRPC_TARGET": upstreams.target, "EVA_MESSAGING_GRPC_TARGET": upstreams.target,
        "EVA_N8N_INTEGRATION_GRPC_TARGET": upstreams.target,
        "EVA_FRONTEND_URL": "http://localhost:5173", "EVA_SERVICE_CLIENT_SECRET": "gateway-process-test-secret",
        "EVA_SOCKETIO_CHANNEL": f"eva-socketio-test-{uuid.uuid4().hex[:8]}",
        "EVA_RATE_LIMIT_USER_PER_MINUTE": "50", "EVA_RATE_LIMIT_PREFIX": f"rl:gateway-test:{uuid.uuid4().hex[:8]}",
    })
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    account = make_account()
    revoked = make_account()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            started = time.monotonic()
            while time.monotonic() - started < 60:  # wait for the process to listen (start-up, not an assertion)
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "the gateway exited during start-up"
                await asyncio.sleep(0.05)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/health")).json()["status"] == "ok"
            assert "eva_http_requests_total" in (await client.get("/metrics")).text
            me = await client.get("/auth/me", headers={"Authorization": f"Bearer {account.token}",
                                                       "X-Forwarded-For": "203.0.113.50"})
            assert me.status_code == 200 and me.json()["user"]["id"] == account.user_id
            assert upstreams.directory.metadata_of("GetMe")[-1]["x-client-ip"] == "127.0.0.1"  # not the header
            tenant = await client.get("/api/tenant", headers={"Authorization": f"Bearer {account.token}"})
            assert tenant.status_code == 200 and tenant.headers["ratelimit-limit"] == "50"
            await RedisRevocations(redis).revoke(revoked.user_id, at_ms=int(time.time() * 1000) + 1)
            refused = await client.get("/api/tenant", headers={"Authorization": f"Bearer {revoked.token}"})
            assert (refused.status_code, refused.json()["code"]) == (401, "TOKEN_REVOKED")
            assert (await client.get("/docs")).status_code == 200

        probe = sockets()
        await probe.connect(url, token=account.token)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(probe.disconnected.wait(), timeout=10)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    logs = (await process.stderr.read()).decode() if process.stderr else ""
    assert '"msg": "service started"' in logs and '"msg": "service stopped"' in logs
    assert account.token not in logs  # tokens are never logged
    assert "Traceback" not in logs, logs
