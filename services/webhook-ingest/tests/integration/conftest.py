"""Real components for the ingest integration tests: a migrated database, Redis, Kafka topics, a fake
auth + tenant gRPC server on port 0 (behind the real interceptor), and the real HTTP app under uvicorn."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import ServiceTokenProvider, current_principal
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.errors import Unauthenticated
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.redis import create_redis, redis_ready
from eva_common.runtime import HttpServer
from eva_events.topics import MAX_MESSAGE_BYTES
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import TestInfra, free_port, test_infra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.tokens import TestTokenIssuer
from eva_testing.waiting import eventually
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from webhook_ingest_service.api import create_app
from webhook_ingest_service.ratelimit import RedisFailureLimiter
from webhook_ingest_service.repository import WebhookEventRepository
from webhook_ingest_service.service import WebhookIngest
from webhook_ingest_service.tenants import CachedTenantDirectory, GrpcTenantDirectory

SERVICE_DIR = Path(__file__).resolve().parents[2]
SERVICE_CLIENT_SECRET = "ingest-test-client-secret"
PLATFORM_APP_SECRET = "platform_app_secret_for_tests"
PLATFORM_VERIFY_TOKEN = "platform-verify-token"


@dataclass
class FakeTenant:
    tenant_id: str
    app_secret: str
    verify_token: str


class FakeAuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(self, issuer: TestTokenIssuer) -> None:
        self.issuer = issuer

    async def IssueServiceToken(self, request: auth_pb2.IssueServiceTokenRequest,
                                context: grpc.aio.ServicerContext) -> auth_pb2.IssueServiceTokenResponse:
        if request.client_secret != SERVICE_CLIENT_SECRET:
            raise Unauthenticated("bad client secret")
        return auth_pb2.IssueServiceTokenResponse(
            access_token=self.issuer.service_token(service=request.service_name), expires_in=300)


class FakeTenantServicer(tenant_pb2_grpc.TenantServiceServicer):  # type: ignore[misc]
    """Answers only service principals, like the real TenantService's (service) methods."""

    def __init__(self) -> None:
        self.by_phone: dict[str, FakeTenant] = {}
        self.by_waba: dict[str, FakeTenant] = {}
        self.resolve_calls = 0
        self.waba_calls = 0

    def add(self, phone_number_id: str, *, tenant_id: str, app_secret: str, verify_token: str) -> None:
        self.by_phone[phone_number_id] = FakeTenant(tenant_id, app_secret, verify_token)

    def add_waba(self, waba_id: str, *, tenant_id: str, app_secret: str) -> None:
        self.by_waba[waba_id] = FakeTenant(tenant_id, app_secret, "")

    async def ResolvePhoneNumber(self, request: tenant_pb2.ResolvePhoneNumberRequest,
                                 context: grpc.aio.ServicerContext) -> tenant_pb2.ResolvePhoneNumberResponse:
        current_principal().require_service()
        self.resolve_calls += 1
        tenant = self.by_phone.get(request.phone_number_id)
        if tenant is None:
            return tenant_pb2.ResolvePhoneNumberResponse(found=False)
        return tenant_pb2.ResolvePhoneNumberResponse(found=True, tenant_id=tenant.tenant_id, tenant_status="active",
                                                     app_secret=tenant.app_secret)

    async def ResolveWabaId(self, request: tenant_pb2.ResolveWabaIdRequest,
                            context: grpc.aio.ServicerContext) -> tenant_pb2.ResolvePhoneNumberResponse:
        current_principal().require_service()
        self.waba_calls += 1
        tenant = self.by_waba.get(request.waba_id)
        if tenant is None:
            return tenant_pb2.ResolvePhoneNumberResponse(found=False)
        return tenant_pb2.ResolvePhoneNumberResponse(found=True, tenant_id=tenant.tenant_id, tenant_status="active",
                                                     app_secret=tenant.app_secret)

    async def CheckVerifyToken(self, request: tenant_pb2.CheckVerifyTokenRequest,
                               context: grpc.aio.ServicerContext) -> tenant_pb2.CheckVerifyTokenResponse:
        current_principal().require_service()
        for tenant in self.by_phone.values():
            if tenant.verify_token == request.verify_token:
                return tenant_pb2.CheckVerifyTokenResponse(valid=True, tenant_id=tenant.tenant_id)
        return tenant_pb2.CheckVerifyTokenResponse(valid=False)


@dataclass
class IngestApp:
    base_url: str
    topic: str
    publisher: KafkaPublisher
    http: HttpServer


IngestFactory = Callable[..., AbstractAsyncContextManager[IngestApp]]


@pytest.fixture(scope="session")
def platform_app_secret() -> str:
    return PLATFORM_APP_SECRET


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="module")
async def database(infra: TestInfra) -> AsyncIterator[TestDatabase]:
    async with migrated_database(infra, SERVICE_DIR, "ingest") as db:
        yield db


@pytest.fixture(scope="module")
async def engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.app_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def owner_engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """The owner role (for assertions): row-level security still applies, it sees only unrouted rows unless a
    tenant is set."""
    engine = create_engine(database.owner_url, pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def repository(engine: AsyncEngine) -> WebhookEventRepository:
    return WebhookEventRepository(sessions=session_factory(engine))


@pytest.fixture(scope="module")
async def redis(infra: TestInfra) -> AsyncIterator[Redis]:
    client = create_redis(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def tenant_servicer() -> FakeTenantServicer:
    return FakeTenantServicer()


@pytest.fixture(scope="module")
async def grpc_target(tenant_servicer: FakeTenantServicer) -> AsyncIterator[str]:
    issuer = TestTokenIssuer()
    server = GrpcServer(
        registrars=[
            lambda s: auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuthServicer(issuer), s),
            lambda s: tenant_pb2_grpc.add_TenantServiceServicer_to_server(tenant_servicer, s),
        ],
        service_names=["eva.auth.v1.AuthService", "eva.tenant.v1.TenantService"],
        verifier=issuer.verifier(),
        public_methods=frozenset({"IssueServiceToken"}),
    )
    await server.start()
    yield f"127.0.0.1:{server.port}"
    await server.stop(0)


@pytest.fixture(scope="module")
def start_ingest(
    infra: TestInfra, engine: AsyncEngine, repository: WebhookEventRepository, redis: Redis, grpc_target: str
) -> IngestFactory:
    """Starts the real HTTP app wired to real Kafka/Redis/PostgreSQL and the fake gRPC peers."""

    @asynccontextmanager
    async def start(
        *,
        kafka_bootstrap: str | None = None,
        unverified_limit: int = 1000,
        ack_timeout: float = 2.0,
        wait_for_kafka: bool = True,
    ) -> AsyncIterator[IngestApp]:
        topic = unique_topic("wa-webhooks")
        if wait_for_kafka:
            await create_topics(infra.kafka_bootstrap, topic)
        channel = create_channel(grpc_target)
        tokens = ServiceTokenProvider(channel_factory=lambda: channel, service_name="webhook-ingest",
                                      client_secret=SERVICE_CLIENT_SECRET)
        tenants = CachedTenantDirectory(inner=GrpcTenantDirectory(channel=channel, token=tokens.token, timeout=3.0))
        bootstrap = kafka_bootstrap or infra.kafka_bootstrap
        publisher = KafkaPublisher(bootstrap, client_id="ingest-test")
        publisher.start_in_background()
        if wait_for_kafka:
            await eventually(lambda: publisher.ready(topic), timeout=30)
        ingest = WebhookIngest(
            tenants=tenants,
            publisher=publisher,
            unrouted=repository,
            limiter=RedisFailureLimiter(redis=redis, limit=unverified_limit, prefix=f"test:{uuid.uuid4().hex}"),
            topic=topic,
            platform_app_secret=PLATFORM_APP_SECRET,
            platform_verify_token=PLATFORM_VERIFY_TOKEN,
            ack_timeout_seconds=ack_timeout,
            retry_after_seconds=5,
        )
        app = create_app(
            ingest=ingest,
            readiness={"postgres": lambda: database_ready(engine), "redis": lambda: redis_ready(redis),
                       "kafka": lambda: publisher.ready(topic)},
            max_body_bytes=3_145_728,
        )
        port = free_port()
        http = HttpServer(app, host="127.0.0.1", port=port)
        await http.start()
        try:
            yield IngestApp(base_url=f"http://127.0.0.1:{port}", topic=topic, publisher=publisher, http=http)
        finally:
            await http.stop()
            await publisher.stop()
            await channel.close()

    return start


@pytest.fixture(scope="module")
async def ingest_app(start_ingest: IngestFactory) -> AsyncIterator[IngestApp]:
    async with start_ingest() as app:
        yield app


@pytest.fixture
async def client(ingest_app: IngestApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ingest_app.base_url, timeout=30) as http_client:
        yield http_client


TopicReader = Callable[[str], Awaitable[list[ConsumerRecord]]]


@pytest.fixture(scope="session")
def read_topic(infra: TestInfra) -> TopicReader:
    """Every record a topic holds right now (reads from the beginning to the current end offsets)."""

    async def read(topic: str) -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False,
                                    max_partition_fetch_bytes=MAX_MESSAGE_BYTES, fetch_max_bytes=4 * MAX_MESSAGE_BYTES)
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
        await admin.start()
        try:
            [description] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [item["partition"] for item in description["partitions"]]
        await consumer.start()
        try:
            assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            ends = await consumer.end_offsets(assigned)
            records: list[ConsumerRecord] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(*assigned, timeout_ms=1000)
                for batch in batches.values():
                    records.extend(batch)
            return records
        finally:
            await consumer.stop()

    return read
