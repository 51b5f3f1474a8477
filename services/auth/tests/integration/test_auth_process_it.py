"""The start-up contract: `python -m auth_service` configured by EVA_* only serves gRPC and HTTP (health,
readiness of PostgreSQL, Redis and Kafka, metrics, JWKS) and exits 0 on SIGTERM; a bad configuration exits 2
naming the field, never echoing a secret."""

import asyncio
import signal
import sys
import time

import httpx
import pytest
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva_common.grpc.client import create_channel
from eva_testing.infra import free_port

pytestmark = pytest.mark.integration


async def wait_ready(url: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return response
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered 200")
            await asyncio.sleep(0.2)


async def test_the_process_serves_and_stops_cleanly_on_sigterm(stack) -> None:
    http_port, grpc_port = free_port(), free_port()
    env = {**stack.service_env(), "EVA_HTTP_PORT": str(http_port), "EVA_GRPC_PORT": str(grpc_port)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "auth_service", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        ready = await wait_ready(f"http://127.0.0.1:{http_port}/readyz")
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok", "workers": "ok"}
        channel = create_channel(f"127.0.0.1:{grpc_port}")
        try:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            admin = await stack.register(tenant_name="Process Hotel")
            session = await stub.Login(auth_pb2.LoginRequest(email=admin.user.email, password="correct horse battery"),
                                       timeout=10)
            assert session.user.id == admin.user.id
        finally:
            await channel.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            metrics = (await client.get("/metrics")).text
            jwks = (await client.get("/.well-known/jwks.json")).json()
        assert 'eva_grpc_requests_total{code="OK",method="/eva.auth.v1.AuthService/Login"} 1.0' in metrics
        assert [key["kid"] for key in jwks["keys"]] == ["current", "previous"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "PRIVATE KEY" not in err.decode()


async def test_a_bad_configuration_exits_2_without_echoing_secrets(stack) -> None:
    env = {**stack.service_env(), "EVA_JWT_SIGNING_KEYS": '[{"kid": "k1", "private_key_pem": "changeme-secret-x"}]',
           "EVA_SERVICE_CLIENTS": '{"ingest": "short"}', "EVA_ENVIRONMENT": "production"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "auth_service", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    text = err.decode()
    assert "jwt_signing_keys" in text and "changeme-secret-x" not in text
