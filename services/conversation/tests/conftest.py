"""Fixtures of the conversation service's tests: the test profile's real PostgreSQL and Kafka, a fresh migrated
database per module, the service built by its own composition root with a test token issuer, and Kafka helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from conversation_service.main import ConversationApp
from conversation_service.settings import Settings
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.conversation.v1 import conversation_pb2_grpc
from eva_common.auth import current_principal
from eva_common.errors import NotFound, PermissionDenied
from eva_common.grpc.server import GrpcServer
from eva_events.topics import dlq
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import TestInfra, test_infra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.tokens import TestTokenIssuer
from eva_testing.waiting import KafkaTools
from eva_testing.waiting import eventually as _eventually

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="session")
def issuer() -> TestTokenIssuer:
    return TestTokenIssuer()


@pytest_asyncio.fixture(scope="module")
async def database(infra: TestInfra) -> AsyncIterator[TestDatabase]:
    async with migrated_database(infra, SERVICE_DIR, "conversation_test") as db:
        yield db


@pytest_asyncio.fixture(scope="module")
async def owner_db(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The owner's connection, for assertions (row-level security still applies: set app.tenant_id to look)."""
    connection = await asyncpg.connect(database.owner_dsn)
    yield connection
    await connection.close()




@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


@pytest.fixture(scope="session")
def kafka(infra: TestInfra) -> KafkaTools:
    return KafkaTools(infra.kafka_bootstrap)


class FakeAuthService(auth_pb2_grpc.AuthServiceServicer):
    """GetUser as auth answers it: a user of the caller's own tenant, else NOT_FOUND. Tests add users."""

    def __init__(self) -> None:
        self.users: dict[str, auth_pb2.User] = {}
        self.calls: list[tuple[str, str]] = []  # (user id asked, the caller's subject)

    def add_user(self, *, tenant_id: str, active: bool = True, role: str = "attendant") -> str:
        user_id = str(uuid.uuid4())
        self.users[user_id] = auth_pb2.User(id=user_id, tenant_id=tenant_id, name="Agent", email=f"{user_id}@x.test",
                                            role=role, active=active)
        return user_id

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: grpc.aio.ServicerContext) -> auth_pb2.User:
        principal = current_principal()
        self.calls.append((request.user_id, principal.subject))
        if principal.is_api_key:  # as auth refuses them
            raise PermissionDenied("API keys cannot use this call", code="API_KEY_NOT_ALLOWED")
        user = self.users.get(request.user_id)
        if user is None or (not principal.is_service and user.tenant_id != principal.tenant_id):
            raise NotFound("user not found", code="USER_NOT_FOUND")
        return user


@dataclass(frozen=True)
class StaticToken:
    """The conversation service's service token (the fake auth issues none)."""

    value: str

    async def token(self) -> str:
        return self.value


@dataclass
class Harness:
    app: ConversationApp
    settings: Settings
    stub: conversation_pb2_grpc.ConversationServiceAsyncStub
    database: TestDatabase
    auth: FakeAuthService

    @property
    def audit_topic(self) -> str:
        return self.settings.audit_events_topic

    @property
    def events_topic(self) -> str:
        return self.settings.conversation_events_topic

    @property
    def messaging_topic(self) -> str:
        return self.settings.messaging_events_topic


@pytest_asyncio.fixture(scope="module")
async def harness(infra: TestInfra, database: TestDatabase, issuer: TestTokenIssuer) -> AsyncIterator[Harness]:
    """The conversation service as main.py builds it (own topics and consumer group), with a test token verifier."""
    events_topic, messaging_topic = unique_topic("conversation-events"), unique_topic("messaging-events")
    audit_topic = unique_topic("audit-events")
    await create_topics(infra.kafka_bootstrap, events_topic, messaging_topic, dlq(messaging_topic), audit_topic)
    fake_auth = FakeAuthService()
    auth_server = GrpcServer(
        registrars=[lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(fake_auth, server)],
        service_names=["eva.auth.v1.AuthService"],
        verifier=issuer.verifier(),
    )
    await auth_server.start()
    settings = Settings(
        database_url=database.app_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        redis_url=infra.redis_url,
        auth_grpc_target=f"127.0.0.1:{auth_server.port}",
        conversation_events_topic=events_topic,
        messaging_events_topic=messaging_topic,
        audit_events_topic=audit_topic,
        consumer_group=f"conversation-test-{uuid.uuid4().hex[:8]}",
        grpc_port=0,
        http_port=0,
        environment="test",
        shutdown_grace_seconds=1,
    )
    app = ConversationApp(settings, verifier=issuer.verifier(), tokens=StaticToken(issuer.service_token(
        service="conversation")))
    await app.start(serve_http=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    try:
        yield Harness(app=app, settings=settings, stub=conversation_pb2_grpc.ConversationServiceStub(channel),
                      database=database, auth=fake_auth)
    finally:
        await channel.close()
        await app.stop()
        await auth_server.stop(0)


def auth_metadata(token: str, *, ip: str | None = None, user_agent: str | None = None) -> tuple[tuple[str, str], ...]:
    entries = [("authorization", f"Bearer {token}")]
    if ip:
        entries.append(("x-client-ip", ip))
    if user_agent:
        entries.append(("x-user-agent", user_agent))
    return tuple(entries)


class Inbox:
    """Builds tenants, guests (through ResolveInboundContact, as messaging does) and callers for the inbox tests."""

    def __init__(self, harness: Harness, issuer: TestTokenIssuer) -> None:
        self.harness = harness
        self.issuer = issuer
        self.stub = harness.stub

    @staticmethod
    def new_tenant() -> str:
        return str(uuid.uuid4())

    def user(self, tenant_id: str, *, role: str = "attendant", user_id: str | None = None,
             ip: str | None = None, user_agent: str | None = None) -> tuple[tuple[str, str], ...]:
        token = self.issuer.user_token(user_id=user_id or f"user-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id,
                                       role=role)
        return auth_metadata(token, ip=ip, user_agent=user_agent)

    def api_key(self, tenant_id: str, *scopes: str) -> tuple[tuple[str, str], ...]:
        return auth_metadata(self.issuer.api_key_token(key_id=uuid.uuid4().hex[:8], tenant_id=tenant_id,
                                                       scopes=list(scopes)))

    async def guest(self, tenant_id: str, *, at: str, name: str = "Guest", wa_id: str | None = None) -> Any:
        from eva.conversation.v1 import conversation_pb2

        wa = wa_id or "1650" + str(uuid.uuid4().int % 10**9).zfill(9)
        return await self.stub.ResolveInboundContact(
            conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant_id, wa_id=wa, profile_name=name,
                                                          message_at=at, phone_number_id="106540352242922"),
            metadata=auth_metadata(self.issuer.service_token(service="messaging")))


@pytest.fixture
def inbox(harness: Harness, issuer: TestTokenIssuer) -> Inbox:
    return Inbox(harness, issuer)


def error_code(error: grpc.aio.AioRpcError) -> str | None:
    from eva_common.errors import ERROR_CODE_METADATA_KEY

    value = dict(error.trailing_metadata() or ()).get(ERROR_CODE_METADATA_KEY)
    return value if isinstance(value, str) else None


@pytest.fixture(scope="session")
def rpc_error() -> Callable[..., Awaitable[tuple[grpc.StatusCode, str | None]]]:
    """Awaits a call that must fail; returns (status, Eva error code)."""

    async def run(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str | None]:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            return error.code(), error_code(error)
        raise AssertionError("the call succeeded")

    return run
