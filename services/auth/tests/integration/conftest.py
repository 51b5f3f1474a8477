"""Both services for real, as in production: auth and tenant on grpc.aio servers on local ports, each with its
own fresh migrated PostgreSQL database; tenant verifies tokens against auth's JWKS over gRPC, and auth creates
tenants through tenant with its own service token. Tenant events go to a unique Kafka topic."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from auth_service.main import Runtime as AuthRuntime
from auth_service.main import build as build_auth
from auth_service.settings import Settings as AuthSettings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2_grpc
from eva_common.grpc.client import call_metadata, create_channel
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import free_port, test_infra
from eva_testing.kafka import create_topics, unique_topic
from tenant_service.main import Runtime as TenantRuntime
from tenant_service.main import build as build_tenant
from tenant_service.settings import Settings as TenantSettings

SERVICES = Path(__file__).resolve().parents[3]
INGEST_SECRET = "ingest-client-secret-for-tests"
PASSWORD = "correct horse battery"


def pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Stack:
    auth: AuthRuntime
    tenant: TenantRuntime
    auth_db: TestDatabase
    tenant_db: TestDatabase
    current_key: Ed25519PrivateKey
    previous_key: Ed25519PrivateKey
    events_topic: str
    auth_stub: auth_pb2_grpc.AuthServiceStub
    tenant_stub: tenant_pb2_grpc.TenantServiceStub

    @staticmethod
    def email() -> str:
        return f"owner-{uuid.uuid4().hex[:10]}@hotel.test"

    async def register(self, *, email: str | None = None, tenant_name: str = "Hotel Azul") -> auth_pb2.AuthSession:
        request = auth_pb2.RegisterRequest(tenant_name=tenant_name, name="Ana Owner", email=email or self.email(),
                                           password=PASSWORD)
        session: auth_pb2.AuthSession = await self.auth_stub.Register(request, timeout=10)
        return session

    async def login(self, email: str, password: str = PASSWORD, tenant_slug: str = "") -> auth_pb2.AuthSession:
        request = auth_pb2.LoginRequest(email=email, password=password, tenant_slug=tenant_slug)
        session: auth_pb2.AuthSession = await self.auth_stub.Login(request, timeout=10)
        return session

    async def service_token(self, name: str = "webhook-ingest", secret: str = INGEST_SECRET) -> str:
        response = await self.auth_stub.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(service_name=name, client_secret=secret), timeout=5
        )
        token: str = response.access_token
        return token


    @staticmethod
    async def failure(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
        """The gRPC status and the stable error code (eva-error-code) a call failed with."""
        try:
            await call
        except grpc.aio.AioRpcError as error:
            codes = [value for key, value in error.trailing_metadata() or () if key == "eva-error-code"]
            return error.code(), codes[0] if codes else ""
        raise AssertionError("the call was expected to fail")

    @staticmethod
    def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(token)

    async def sql(self, database: TestDatabase, query: str, *args: Any) -> list[Any]:
        """Runs SQL as the owner role (to look behind the API, or to set up states the API has no call for yet)."""
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    infra = test_infra()
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    topic = unique_topic("tenant-events")
    await create_topics(infra.kafka_bootstrap, topic, partitions=1)
    async with (
        migrated_database(infra, SERVICES / "auth", "auth") as auth_db,
        migrated_database(infra, SERVICES / "tenant", "tenant") as tenant_db,
    ):
        tenant_port = free_port()
        auth = build_auth(
            AuthSettings(
                database_url=auth_db.app_url,
                service_client_secret="auth-client-secret-for-tests",
                tenant_grpc_target=f"127.0.0.1:{tenant_port}",
                jwt_signing_keys=[{"kid": "current", "private_key_pem": pem(current)},
                                  {"kid": "previous", "private_key_pem": pem(previous)}],
                service_clients={"webhook-ingest": INGEST_SECRET},
                grpc_port=0,
            )
        )
        tenant = build_tenant(
            TenantSettings(
                database_url=tenant_db.app_url,
                service_client_secret="tenant-client-secret-for-tests",
                auth_grpc_target=f"127.0.0.1:{auth.grpc_server.port}",
                encryption_keys={"k1": b64key()},
                encryption_active_key="k1",
                lookup_hmac_key=b64key(),
                kafka_bootstrap=infra.kafka_bootstrap,
                outbox_poll_seconds=0.1,
                grpc_port=tenant_port,
            ),
            events_topic=topic,
        )
        await auth.start()
        await tenant.start()
        auth_channel = create_channel(f"127.0.0.1:{auth.grpc_server.port}")
        tenant_channel: grpc.aio.Channel = create_channel(f"127.0.0.1:{tenant.grpc_server.port}")
        try:
            yield Stack(
                auth=auth, tenant=tenant, auth_db=auth_db, tenant_db=tenant_db, current_key=current,
                previous_key=previous, events_topic=topic,
                auth_stub=auth_pb2_grpc.AuthServiceStub(auth_channel),
                tenant_stub=tenant_pb2_grpc.TenantServiceStub(tenant_channel),
            )
        finally:
            await auth_channel.close()
            await tenant_channel.close()
            await tenant.stop()
            await auth.stop()
