"""Two harnesses, each with its own fresh migrated PostgreSQL database, unique Kafka topics and consumer groups:

- `stack`: the tenant service as in production, next to a real auth service, both on grpc.aio servers on local
  ports; tenant verifies tokens against auth's JWKS over gRPC, and auth creates tenants through tenant with its
  own service token (and sends its audit entries to this tenant service's audit topic).
- `harness`: the tenant service alone, verifying tokens signed by a TestTokenIssuer (with revocation times in the
  real Redis), so a test can act as any principal: a tenant's admin or attendant, a super admin of the platform
  tenant, an API key with given scopes, or a service."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaProducer
from argon2 import PasswordHasher
from auth_service.main import AuthApp
from auth_service.settings import Settings as AuthSettings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import RedisRevocations
from eva_common.grpc.client import call_metadata, create_channel
from eva_events.envelope import EventEnvelope
from eva_events.topics import dlq
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import free_port, test_infra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.tokens import TestTokenIssuer
from redis.asyncio import Redis
from tenant_service.main import TenantApp
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


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Polls `probe` until it returns something truthy (consumers work in the background); fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Stack:
    auth: AuthApp
    tenant: TenantApp
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

    async def attendant(self, session: auth_pb2.AuthSession) -> auth_pb2.AuthSession:
        """An attendant of the session's tenant, logged in through auth (user management comes later, so the
        account is inserted directly into auth's database)."""
        email = self.email()
        await self.sql(
            self.auth_db,
            "INSERT INTO users (id, tenant_id, name, email, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)",
            str(uuid.uuid4()), session.tenant.id, "Ada Attendant", email, PasswordHasher().hash(PASSWORD),
            "attendant", tenant=session.tenant.id,
        )
        return await self.login(email, tenant_slug=session.tenant.slug)

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

    eventually = staticmethod(eventually)

    @staticmethod
    def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(token)

    async def sql(self, database: TestDatabase, query: str, *args: Any, tenant: str | None = None) -> list[Any]:
        """Runs SQL as the owner role (to look behind the API, or to set up states the API has no call for yet).
        Row-level security is forced on the owner too: it reads every row (the lookups' policy) but writes a
        tenant's rows only with `tenant` set."""
        return await owner_sql(database, query, *args, tenant=tenant)


async def owner_sql(database: TestDatabase, query: str, *args: Any, tenant: str | None = None) -> list[Any]:
    connection = await asyncpg.connect(database.owner_dsn)
    try:
        async with connection.transaction():
            if tenant is not None:
                await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
            return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def tenant_settings(database: TestDatabase, **overrides: Any) -> TenantSettings:
    """The tenant service's settings for a test: its own database, unique topics and consumer groups."""
    infra = test_infra()
    values: dict[str, Any] = {
        "database_url": database.app_url,
        "service_client_secret": "tenant-client-secret-for-tests",
        "encryption_keys": {"k1": b64key()},
        "encryption_active_key": "k1",
        "lookup_hmac_key": b64key(),
        "kafka_bootstrap": infra.kafka_bootstrap,
        "redis_url": infra.redis_url,
        "outbox_poll_seconds": 0.1,
        "tenant_events_topic": unique_topic("tenant-events"),
        "audit_events_topic": unique_topic("audit-events"),
        "messaging_events_topic": unique_topic("messaging-events"),
        "usage_consumer_group": f"test-tenant-usage-{uuid.uuid4().hex[:8]}",
        "audit_consumer_group": f"test-tenant-audit-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    return TenantSettings(**values)


async def create_settings_topics(settings: TenantSettings) -> None:
    """The run's topics, one partition each (so a test's records keep their order), and the consumers' DLQs."""
    consumed = (settings.audit_events_topic, settings.messaging_events_topic)
    await create_topics(settings.kafka_bootstrap, settings.tenant_events_topic, *consumed,
                        *(dlq(topic) for topic in consumed), partitions=1)


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    infra = test_infra()
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with (
        migrated_database(infra, SERVICES / "auth", "auth") as auth_db,
        migrated_database(infra, SERVICES / "tenant", "tenant") as tenant_db,
    ):
        tenant_port = free_port()
        settings = tenant_settings(tenant_db, grpc_port=tenant_port)
        await create_settings_topics(settings)
        auth = AuthApp(
            AuthSettings(
                database_url=auth_db.app_url,
                service_client_secret="auth-client-secret-for-tests",
                tenant_grpc_target=f"127.0.0.1:{tenant_port}",
                jwt_signing_keys=[{"kid": "current", "private_key_pem": pem(current)},
                                  {"kid": "previous", "private_key_pem": pem(previous)}],
                service_clients={"webhook-ingest": INGEST_SECRET},
                grpc_port=0,
                kafka_bootstrap=infra.kafka_bootstrap,
                redis_url=infra.redis_url,
                audit_events_topic=settings.audit_events_topic,  # auth's audit entries reach this tenant service
            )
        )
        settings = settings.model_copy(update={"auth_grpc_target": f"127.0.0.1:{auth.grpc_server.port}"})
        tenant = TenantApp(settings)
        await auth.start()
        await tenant.start()
        auth_channel = create_channel(f"127.0.0.1:{auth.grpc_server.port}")
        tenant_channel: grpc.aio.Channel = create_channel(f"127.0.0.1:{tenant.grpc_server.port}")
        try:
            yield Stack(
                auth=auth, tenant=tenant, auth_db=auth_db, tenant_db=tenant_db, current_key=current,
                previous_key=previous, events_topic=settings.tenant_events_topic,
                auth_stub=auth_pb2_grpc.AuthServiceStub(auth_channel),
                tenant_stub=tenant_pb2_grpc.TenantServiceStub(tenant_channel),
            )
        finally:
            await auth_channel.close()
            await tenant_channel.close()
            await tenant.stop()
            await auth.stop()


Metadata = tuple[tuple[str, str], ...]


@dataclass
class Harness:
    runtime: TenantApp
    db: TestDatabase
    issuer: TestTokenIssuer
    redis: Redis
    producer: AIOKafkaProducer
    stub: tenant_pb2_grpc.TenantServiceStub
    platform: tenant_pb2.Tenant

    @property
    def settings(self) -> TenantSettings:
        return self.runtime.settings

    @staticmethod
    def metadata(token: str, *, ip: str | None = None, user_agent: str | None = None,
                 request_id: str | None = None) -> Metadata:
        entries = [("authorization", f"Bearer {token}")]
        entries += [(key, value) for key, value in
                    (("x-client-ip", ip), ("x-user-agent", user_agent), ("x-request-id", request_id)) if value]
        return tuple(entries)

    def service(self, name: str = "test-service") -> Metadata:
        return self.metadata(self.issuer.service_token(service=name))

    def user(self, tenant_id: str, role: str = "admin", *, user_id: str | None = None, **meta: Any) -> Metadata:
        token = self.issuer.user_token(user_id=user_id or f"user-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id,
                                       role=role)
        return self.metadata(token, **meta)

    def super_admin(self, *, user_id: str = "root-1", **meta: Any) -> Metadata:
        return self.user(self.platform.id, "super_admin", user_id=user_id, **meta)

    def api_key(self, tenant_id: str, scopes: list[str], *, key_id: str | None = None) -> Metadata:
        return self.metadata(self.issuer.api_key_token(key_id=key_id or uuid.uuid4().hex, tenant_id=tenant_id,
                                                       scopes=scopes))

    async def new_tenant(self, name: str = "Hotel Test", *, timezone: str = "", locale: str = "") -> tenant_pb2.Tenant:
        tenant: tenant_pb2.Tenant = await self.stub.CreateTenant(
            tenant_pb2.CreateTenantRequest(name=name, timezone=timezone, locale=locale), metadata=self.service())
        return tenant

    async def sql(self, query: str, *args: Any, tenant: str | None = None) -> list[Any]:
        return await owner_sql(self.db, query, *args, tenant=tenant)

    async def publish(self, topic: str, event: EventEnvelope, *, key: str) -> None:
        await self.producer.send_and_wait(topic, value=event.to_bytes(), key=key.encode())

    failure = staticmethod(Stack.failure)
    eventually = staticmethod(eventually)


@pytest.fixture(scope="session")
async def harness() -> AsyncIterator[Harness]:
    infra = test_infra()
    issuer = TestTokenIssuer()
    redis = Redis.from_url(infra.redis_url, decode_responses=True)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    async with migrated_database(infra, SERVICES / "tenant", "tenant_h") as database:
        settings = tenant_settings(database)
        await create_settings_topics(settings)
        runtime = TenantApp(settings, verifier=issuer.verifier(revocations=RedisRevocations(redis)))
        await runtime.start()
        await producer.start()
        channel = create_channel(f"127.0.0.1:{runtime.grpc_server.port}")
        stub = tenant_pb2_grpc.TenantServiceStub(channel)
        try:
            platform = await stub.CreateTenant(tenant_pb2.CreateTenantRequest(name="Platform", platform=True),
                                               metadata=Harness.metadata(issuer.service_token()))
            assert platform.slug == "platform"
            yield Harness(runtime=runtime, db=database, issuer=issuer, redis=redis, producer=producer, stub=stub,
                          platform=platform)
        finally:
            await channel.close()
            await producer.stop()
            await runtime.stop()
            await redis.aclose()
