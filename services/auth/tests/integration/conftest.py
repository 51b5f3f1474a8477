"""Both services for real, as in production: auth and tenant on grpc.aio servers on local ports, each with its own
fresh migrated PostgreSQL database; tenant verifies tokens against auth's JWKS over gRPC (and the revocation times
in Redis), and auth calls tenant with its own service token. Redis is the test profile's; auth's audit entries and
tenant's events go to unique Kafka topics of this session."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from auth_service.main import AuthApp
from auth_service.settings import Settings as AuthSettings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2_grpc
from eva_common.grpc.client import call_metadata, create_channel
from eva_events.envelope import EventEnvelope
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import free_port, test_infra
from eva_testing.kafka import create_topics, unique_topic
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


class Failure(tuple[grpc.StatusCode, str]):
    """(status, error code) of a failed call, like a tuple, plus its Retry-After trailer and details."""

    retry_after: str | None
    details: str

    def __new__(cls, status: grpc.StatusCode, code: str, retry_after: str | None, details: str) -> Failure:
        failure = super().__new__(cls, (status, code))
        failure.retry_after = retry_after
        failure.details = details
        return failure

    @property
    def status(self) -> grpc.StatusCode:
        return self[0]

    @property
    def code(self) -> str:
        return self[1]


class AuditTap:
    """Every audit envelope auth published in this session, read in the background from its unique topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.events: list[tuple[bytes | None, EventEnvelope]] = []
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                          auto_offset_reset="earliest", enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None
        self.raw: list[bytes] = []

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            self.raw.append(record.value)
            self.events.append((record.key, EventEnvelope.from_bytes(record.value)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[EventEnvelope], bool], *, count: int = 1, timeout: float = 60.0
    ) -> list[tuple[bytes | None, EventEnvelope]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [(key, event) for key, event in self.events if predicate(event)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} audit events, saw {len(found)}")
            await asyncio.sleep(0.05)

    def matching(self, predicate: Callable[[EventEnvelope], bool]) -> list[EventEnvelope]:
        return [event for _, event in self.events if predicate(event)]


@dataclass
class Stack:
    auth: AuthApp
    tenant: TenantApp
    auth_db: TestDatabase
    tenant_db: TestDatabase
    current_key: Ed25519PrivateKey
    previous_key: Ed25519PrivateKey
    events_topic: str
    auth_settings: AuthSettings
    tenant_settings: TenantSettings
    audit: AuditTap
    auth_stub: auth_pb2_grpc.AuthServiceStub
    tenant_stub: tenant_pb2_grpc.TenantServiceStub
    infra: Any = field(default_factory=test_infra)

    @staticmethod
    def email(prefix: str = "owner") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}@hotel.test"

    async def register(self, *, email: str | None = None, tenant_name: str = "Hotel Azul") -> auth_pb2.AuthSession:
        request = auth_pb2.RegisterRequest(tenant_name=tenant_name, name="Ana Owner", email=email or self.email(),
                                           password=PASSWORD)
        session: auth_pb2.AuthSession = await self.auth_stub.Register(request, timeout=10)
        return session

    async def login(
        self, email: str, password: str = PASSWORD, tenant_slug: str = "", *, ip: str | None = None,
        user_agent: str | None = None,
    ) -> auth_pb2.AuthSession:
        request = auth_pb2.LoginRequest(email=email, password=password, tenant_slug=tenant_slug)
        session: auth_pb2.AuthSession = await self.auth_stub.Login(
            request, timeout=10, metadata=self.client_metadata(None, ip=ip, user_agent=user_agent))
        return session

    async def service_token(self, name: str = "webhook-ingest", secret: str = INGEST_SECRET) -> str:
        response = await self.auth_stub.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(service_name=name, client_secret=secret), timeout=5
        )
        token: str = response.access_token
        return token

    async def create_user(
        self, token: str, *, role: str = "attendant", email: str | None = None, password: str = PASSWORD,
        name: str = "Ada Attendant", tenant_id: str = "",
    ) -> auth_pb2.User:
        request = auth_pb2.CreateUserRequest(name=name, email=email or self.email(role), password=password,
                                             role=role, tenant_id=tenant_id)
        user: auth_pb2.User = await self.auth_stub.CreateUser(request, metadata=self.bearer(token), timeout=10)
        return user

    async def user_session(self, admin: auth_pb2.AuthSession, role: str = "attendant") -> auth_pb2.AuthSession:
        """A new user of the admin's tenant (through CreateUser), logged in."""
        user = await self.create_user(admin.access_token, role=role)
        return await self.login(user.email, tenant_slug=admin.tenant.slug)

    @staticmethod
    async def failure(call: Awaitable[Any]) -> Failure:
        """The gRPC status, the stable error code (eva-error-code) and Retry-After (eva-retry-after) of a failure."""
        try:
            await call
        except grpc.aio.AioRpcError as error:
            trailers = {key: value for key, value in error.trailing_metadata() or () if isinstance(value, str)}
            return Failure(error.code(), trailers.get("eva-error-code", ""), trailers.get("eva-retry-after"),
                           error.details() or "")
        raise AssertionError("the call was expected to fail")

    @staticmethod
    def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
        return call_metadata(token)

    @staticmethod
    def client_metadata(
        token: str | None, *, ip: str | None = None, user_agent: str | None = None, request_id: str | None = None
    ) -> tuple[tuple[str, str], ...]:
        entries = list(call_metadata(token))
        if ip:
            entries.append(("x-client-ip", ip))
        if user_agent:
            entries.append(("x-user-agent", user_agent))
        if request_id:
            entries.append(("x-request-id", request_id))
        return tuple(entries)

    async def sql(self, database: TestDatabase, query: str, *args: Any, tenant: str | None = None) -> list[Any]:
        """Runs SQL as the owner role (to look behind the API, or to set up states the API has no call for).
        Row-level security binds the owner too: it reads every row (the policy behind the definer lookups), but
        writes a tenant's rows only with `tenant` set."""
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            async with connection.transaction():
                if tenant is not None:
                    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                return [dict(row) for row in await connection.fetch(query, *args)]
        finally:
            await connection.close()

    def service_env(self) -> dict[str, str]:
        """The EVA_* environment the auth process of this stack would get (for the CLI and the process tests)."""
        settings = self.auth_settings
        env = {key: value for key, value in os.environ.items() if not key.startswith("EVA_")}
        env.update({
            "EVA_SERVICE_NAME": "auth",
            "EVA_ENVIRONMENT": "test",
            "EVA_DATABASE_URL": self.auth_db.app_url,
            "EVA_SERVICE_CLIENT_SECRET": "auth-client-secret-for-tests",
            "EVA_TENANT_GRPC_TARGET": settings.tenant_grpc_target,
            "EVA_JWT_SIGNING_KEYS": json.dumps([{"kid": "current", "private_key_pem": pem(self.current_key)},
                                                {"kid": "previous", "private_key_pem": pem(self.previous_key)}]),
            "EVA_SERVICE_CLIENTS": json.dumps({"webhook-ingest": INGEST_SECRET}),
            "EVA_REDIS_URL": settings.redis_url,
            "EVA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "EVA_AUDIT_EVENTS_TOPIC": settings.audit_events_topic,
        })
        return env

    async def seed(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "auth_service.seed_super_admin", *args, env=env or self.service_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def set_tenant_status(self, tenant_id: str, status: str) -> None:
        """Suspends or reactivates a tenant behind the tenant service's API (its own row, under its RLS)."""
        rows = await self.sql(self.tenant_db, "UPDATE tenants SET status = $2 WHERE id = $1 RETURNING id", tenant_id,
                              status, tenant=tenant_id)
        assert len(rows) == 1

    async def end_reuse_grace(self, session: auth_pb2.AuthSession) -> None:
        """Moves every rotation of the session's user back past the refresh-token reuse grace (instead of waiting
        for it): a spent token presented now is a replay after the grace."""
        seconds = float(self.auth_settings.refresh_reuse_grace_seconds + 1)
        await self.sql(self.auth_db, "UPDATE refresh_tokens SET used_at = used_at - make_interval(secs => $2) "
                                     "WHERE user_id = $1 AND used_at IS NOT NULL",
                       session.user.id, seconds, tenant=session.tenant.id)

    async def app_sql(self, query: str, *args: Any, tenant: str | None = None) -> list[Any]:
        """Runs SQL on auth's database as the app role (eva_app), the way the service connects."""
        connection = await asyncpg.connect(self.auth_db.app_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            async with connection.transaction():
                if tenant is not None:
                    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                return [dict(row) for row in await connection.fetch(query, *args)]
        finally:
            await connection.close()


@dataclass(frozen=True)
class SuperAdmin:
    email: str
    password: str
    user_id: str
    tenant_id: str
    session: auth_pb2.AuthSession


@pytest.fixture(scope="session")
async def super_admin(stack: Stack) -> SuperAdmin:
    """The platform tenant and its super admin, made once per session by the real seeding command."""
    email, password = stack.email("root"), "platform root passphrase"
    code, out, err = await stack.seed("--email", email,
                                      env={**stack.service_env(), "EVA_SUPER_ADMIN_PASSWORD": password})
    assert code == 0, err
    result = json.loads(out)
    session = await stack.login(email, password, tenant_slug="platform")
    return SuperAdmin(email=email, password=password, user_id=result["userId"], tenant_id=result["tenantId"],
                      session=session)


def tenant_settings(database: TestDatabase, **overrides: Any) -> TenantSettings:
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
        "usage_consumer_group": f"test-auth-usage-{uuid.uuid4().hex[:8]}",
        "audit_consumer_group": f"test-auth-audit-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    return TenantSettings(**values)


def auth_settings(database: TestDatabase, *, keys: list[tuple[str, Ed25519PrivateKey]], tenant_target: str,
                  audit_topic: str, **overrides: Any) -> AuthSettings:
    infra = test_infra()
    values: dict[str, Any] = {
        "database_url": database.app_url,
        "service_client_secret": "auth-client-secret-for-tests",
        "tenant_grpc_target": tenant_target,
        "jwt_signing_keys": [{"kid": kid, "private_key_pem": pem(key)} for kid, key in keys],
        "service_clients": {"webhook-ingest": INGEST_SECRET},
        "grpc_port": 0,
        "redis_url": infra.redis_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "audit_events_topic": audit_topic,
        "outbox_poll_seconds": 0.1,
        **overrides,
    }
    return AuthSettings(**values)


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    infra = test_infra()
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with (
        migrated_database(infra, SERVICES / "auth", "auth") as auth_db,
        migrated_database(infra, SERVICES / "tenant", "tenant") as tenant_db,
    ):
        tenant_port = free_port()
        t_settings = tenant_settings(tenant_db, grpc_port=tenant_port)
        await create_topics(infra.kafka_bootstrap, t_settings.tenant_events_topic, t_settings.audit_events_topic,
                            t_settings.messaging_events_topic, partitions=1)
        a_settings = auth_settings(auth_db, keys=[("current", current), ("previous", previous)],
                                   tenant_target=f"127.0.0.1:{tenant_port}",
                                   audit_topic=t_settings.audit_events_topic)
        auth = AuthApp(a_settings)
        t_settings = t_settings.model_copy(update={"auth_grpc_target": f"127.0.0.1:{auth.grpc_server.port}"})
        tenant = TenantApp(t_settings)
        audit = AuditTap(infra.kafka_bootstrap, t_settings.audit_events_topic)
        await auth.start()
        await tenant.start()
        await audit.start()
        auth_channel = create_channel(f"127.0.0.1:{auth.grpc_server.port}")
        tenant_channel: grpc.aio.Channel = create_channel(f"127.0.0.1:{tenant.grpc_server.port}")
        try:
            yield Stack(
                auth=auth, tenant=tenant, auth_db=auth_db, tenant_db=tenant_db, current_key=current,
                previous_key=previous, events_topic=t_settings.tenant_events_topic, auth_settings=a_settings,
                tenant_settings=t_settings, audit=audit,
                auth_stub=auth_pb2_grpc.AuthServiceStub(auth_channel),
                tenant_stub=tenant_pb2_grpc.TenantServiceStub(tenant_channel),
            )
        finally:
            await audit.stop()
            await auth_channel.close()
            await tenant_channel.close()
            await tenant.stop()
            await auth.stop()
