"""Fixtures of the messaging service's tests: the test profile's real PostgreSQL and Kafka, fresh migrated
databases, the REAL conversation service (its gRPC server and consumer) next to the messaging service, both built by
their composition roots with a test token issuer, the WhatsApp simulator served in-process (its Graph media API),
and Kafka helpers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import pytest_asyncio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from conversation_service.main import ConversationApp
from conversation_service.settings import Settings as ConversationSettings
from eva.conversation.v1 import conversation_pb2_grpc
from eva.messaging.v1 import messaging_pb2_grpc
from eva_events.envelope import EventEnvelope, make_event
from eva_events.topics import dlq
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookReceived
from eva_simulator.app import create_app as create_simulator_app
from eva_simulator.server import serve_in_background
from eva_simulator.settings import Settings as SimulatorSettings
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import TestInfra, test_infra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.scripts import load_script
from eva_testing.tokens import TestTokenIssuer
from eva_testing.waiting import KafkaTools
from eva_testing.waiting import eventually as _eventually
from messaging_service.clients import SendingProfile
from messaging_service.main import MessagingApp
from messaging_service.media_worker import GraphMediaClient, MediaWorker
from messaging_service.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[1]
CONVERSATION_DIR = SERVICE_DIR.parent / "conversation"


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="session")
def issuer() -> TestTokenIssuer:
    return TestTokenIssuer()




@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


@pytest.fixture(scope="session")
def kafka(infra: TestInfra) -> KafkaTools:
    return KafkaTools(infra.kafka_bootstrap)


class IssuedServiceTokens:
    """This service's token source in tests: tokens from the test issuer, as auth would issue them."""

    def __init__(self, issuer: TestTokenIssuer) -> None:
        self._issuer = issuer
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        return self._issuer.service_token(service="messaging")


class FakeCredentials:
    """The tenant service's stand-in (TenantDirectory): every tenant's access token is `token-<tenant>`; a test
    gives a tenant its own sending profile (`profiles`, e.g. a simulator number), an exhausted quota (`exhausted`),
    and reads the health reports."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.profiles: dict[str, SendingProfile] = {}
        self.exhausted: set[str] = set()
        self.health_reports: list[tuple[str, bool, int]] = []

    async def access_token(self, *, tenant_id: str) -> str:
        self.calls.append(tenant_id)
        return (await self.sending_profile(tenant_id=tenant_id)).access_token

    async def sending_profile(self, *, tenant_id: str) -> SendingProfile:
        return self.profiles.get(tenant_id) or SendingProfile(
            tenant_id=tenant_id, phone_number_id=f"pn-{tenant_id}", access_token=f"token-{tenant_id}",
            waba_id=f"waba-{tenant_id}", display_phone_number="15550000000", coexistence=False, throughput_mps=0,
            tenant_status="active", read_receipts="on_read", health="healthy")

    async def quota_exceeded(self, *, tenant_id: str) -> bool:
        return tenant_id in self.exhausted

    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None:
        self.health_reports.append((tenant_id, healthy, code))


@dataclass
class FakeMedia:
    content: bytes
    sha256: str  # what Meta announces
    failures: int = 0  # how many lookups answer 500 first


class FakeGraph:
    """A Graph API for media behind an httpx transport: `GET /v21.0/{media_id}` → {url, mime_type, sha256, …}, then
    `GET <url>` → the bytes; both refuse a request without the tenant's bearer token."""

    def __init__(self) -> None:
        self.media: dict[str, FakeMedia] = {}
        self.requests: list[tuple[str, str]] = []

    def add(self, media_id: str, content: bytes, *, sha256: str | None = None, failures: int = 0) -> str:
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        self.media[media_id] = FakeMedia(content=content, sha256=sha256 or digest, failures=failures)
        return digest

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if not request.headers.get("authorization", "").startswith("Bearer token-"):
            return httpx.Response(401, json={"error": {"code": 190, "message": "Invalid OAuth access token"}})
        parts = request.url.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "v21.0" and parts[1] in self.media:
            media = self.media[parts[1]]
            if media.failures > 0:
                media.failures -= 1
                return httpx.Response(500, json={"error": {"code": 2, "message": "Service temporarily unavailable"}})
            return httpx.Response(200, json={
                "messaging_product": "whatsapp", "url": f"http://graph.test/download/{parts[1]}",
                "mime_type": "image/jpeg", "sha256": media.sha256, "file_size": str(len(media.content)),
                "id": parts[1]})
        if len(parts) == 2 and parts[0] == "download" and parts[1] in self.media:
            return httpx.Response(200, content=self.media[parts[1]].content, headers={"content-type": "image/jpeg"})
        return httpx.Response(404, json={"error": {"code": 100, "message": "Unsupported get request"}})


@dataclass
class Stack:
    messaging: MessagingApp
    conversation: ConversationApp
    stub: messaging_pb2_grpc.MessagingServiceAsyncStub
    conversations: conversation_pb2_grpc.ConversationServiceAsyncStub
    database: TestDatabase
    tokens: IssuedServiceTokens
    graph: FakeGraph
    credentials: FakeCredentials
    media_root: Path

    @property
    def settings(self) -> Settings:
        return self.messaging.settings

    @property
    def webhooks_topic(self) -> str:
        return self.settings.webhooks_topic

    @property
    def events_topic(self) -> str:
        return self.settings.messaging_events_topic

    @property
    def outcomes_topic(self) -> str:
        return self.settings.webhook_outcomes_topic


@pytest_asyncio.fixture(scope="module")
async def database(infra: TestInfra) -> AsyncIterator[TestDatabase]:
    async with migrated_database(infra, SERVICE_DIR, "messaging_test") as db:
        yield db


@pytest_asyncio.fixture(scope="module")
async def owner_db(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The owner's connection, for assertions (row-level security still applies: set app.tenant_id to look; only
    media_jobs and parked_statuses let the owner, whose SECURITY DEFINER functions work across tenants, see all
    their rows)."""
    connection = await asyncpg.connect(database.owner_dsn)
    yield connection
    await connection.close()


@contextlib.asynccontextmanager
async def running_stack(infra: TestInfra, database: TestDatabase, issuer: TestTokenIssuer, media_root: Path, *,
                        graph_transport: httpx.AsyncBaseTransport | None = None,
                        **messaging_settings: Any) -> AsyncIterator[Stack]:
    """The messaging service and the real conversation service it calls, each on its own topics and groups: the
    conversation service consumes the messaging events, as in production. Media downloads go to a FakeGraph, unless
    `graph_transport` carries the service's HTTP calls elsewhere (e.g. a real transport, with `whatsapp_graph_url`
    the simulator's); the media worker's loop polls once an hour, so tests drive it with `media_worker.run_once()`.
    `messaging_settings` override the messaging service's settings (e.g. the S3 media store)."""
    webhooks, events = unique_topic("wa-webhooks"), unique_topic("messaging-events")
    outcomes, conversation_events = unique_topic("webhook-outcomes"), unique_topic("conversation-events")
    tenant_events = unique_topic("tenant-events")
    await create_topics(infra.kafka_bootstrap, webhooks, events, outcomes, conversation_events, tenant_events,
                        dlq(webhooks), dlq(events), dlq(tenant_events))
    suffix = uuid.uuid4().hex[:8]
    async with contextlib.AsyncExitStack() as cleanup:
        conversation_db = await cleanup.enter_async_context(
            migrated_database(infra, CONVERSATION_DIR, "conversation_for_messaging"))
        conversation = ConversationApp(ConversationSettings(
            database_url=conversation_db.app_url, kafka_bootstrap=infra.kafka_bootstrap,
            conversation_events_topic=conversation_events, messaging_events_topic=events,
            consumer_group=f"conversation-{suffix}", environment="test", shutdown_grace_seconds=1,
        ), verifier=issuer.verifier())
        cleanup.push_async_callback(conversation.stop)  # stops before its database is dropped
        await conversation.start(serve_http=False)
        tokens = IssuedServiceTokens(issuer)
        graph, credentials = FakeGraph(), FakeCredentials()
        settings: dict[str, Any] = {
            "database_url": database.app_url, "kafka_bootstrap": infra.kafka_bootstrap, "redis_url": infra.redis_url,
            "conversation_grpc_target": f"127.0.0.1:{conversation.grpc_port}", "webhooks_topic": webhooks,
            "messaging_events_topic": events, "webhook_outcomes_topic": outcomes,
            "consumer_group": f"messaging-{suffix}", "environment": "test", "shutdown_grace_seconds": 1,
            "tenant_events_topic": tenant_events, "tenant_events_consumer_group": f"messaging-tenant-events-{suffix}",
            "service_client_secret": "unused-in-tests-tokens-injected", "whatsapp_graph_url": "http://graph.test",
            "media_root": media_root, "media_poll_seconds": 3600, "media_backoff_seconds": 0.01,
            "parked_status_expiry_interval_seconds": 3600}
        messaging = MessagingApp(
            Settings(**(settings | messaging_settings)), verifier=issuer.verifier(), tokens=tokens,
            credentials=credentials, http_transport=graph_transport or httpx.MockTransport(graph.handle))
        cleanup.push_async_callback(messaging.stop)
        await messaging.start(serve_http=False)
        messaging_channel = grpc.aio.insecure_channel(f"127.0.0.1:{messaging.grpc_port}")
        cleanup.push_async_callback(messaging_channel.close)
        conversation_channel = grpc.aio.insecure_channel(f"127.0.0.1:{conversation.grpc_port}")
        cleanup.push_async_callback(conversation_channel.close)
        yield Stack(
            messaging=messaging, conversation=conversation,
            stub=messaging_pb2_grpc.MessagingServiceStub(messaging_channel),
            conversations=conversation_pb2_grpc.ConversationServiceStub(conversation_channel),
            database=database, tokens=tokens, graph=graph, credentials=credentials, media_root=media_root)


@pytest_asyncio.fixture(scope="module")
async def stack(infra: TestInfra, database: TestDatabase, issuer: TestTokenIssuer,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The stack with the local media store (see running_stack)."""
    async with running_stack(infra, database, issuer, tmp_path_factory.mktemp("media")) as built:
        yield built


@pytest.fixture(scope="session")
def stack_builder() -> Callable[..., contextlib.AbstractAsyncContextManager[Stack]]:
    """running_stack, for tests that need a differently configured messaging service."""
    return running_stack


class NumberToken:
    """The tenant's access token, as TenantService.GetSendingCredentials would return it."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def access_token(self, *, tenant_id: str) -> str:
        return self.token


class RequestRecorder:
    """An ASGI app in front of another, recording the method and path of every HTTP request it receives."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self._app(scope, receive, send)


@dataclass
class SimulatorServer:
    """The WhatsApp simulator served over HTTP, with one number registered, and the requests it has received."""

    client: httpx.AsyncClient  # on the simulator's URL, for its control API (/_sim/...)
    url: str
    phone_number_id: str
    access_token: str  # the number's
    recorder: RequestRecorder

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request the simulator received, oldest first."""
        return self.recorder.requests

    async def add_number(self, phone_number_id: str, *, access_token: str) -> None:
        answer = await self.client.post("/_sim/numbers", json={
            "phoneNumberId": phone_number_id, "wabaId": "102290129340398", "displayPhoneNumber": "15550783881",
            "accessToken": access_token, "appSecret": "sim-app-secret-" + uuid.uuid4().hex})
        assert answer.status_code == 200, answer.text

    def media_worker(self, stack: Stack, http: httpx.AsyncClient, *, token: str | None = None) -> MediaWorker:
        """A media worker of the stack's database and store that asks this simulator, with `token` (the number's
        by default) as the tenant's access token."""
        return MediaWorker(
            sessions=stack.messaging.sessions, credentials=NumberToken(token or self.access_token),
            graph=GraphMediaClient(http=http, graph_url=self.url, api_version=stack.settings.whatsapp_api_version),
            store=stack.messaging.media_store, events_topic=stack.events_topic, backoff_seconds=0.01)


@pytest_asyncio.fixture(scope="module")
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The real simulator (eva_simulator) on a free port: its Graph API answers the media look-up and serves the
    download only with the owning number's bearer token, like Meta; its control API stores media."""
    recorder = RequestRecorder(create_simulator_app(SimulatorSettings(auto_statuses=False)))
    async with (serve_in_background(recorder) as server,
                httpx.AsyncClient(base_url=server.url, timeout=10) as client):
        served = SimulatorServer(client=client, url=server.url, phone_number_id="106540352242922",
                                 access_token=f"EAAG-sim-{uuid.uuid4().hex}", recorder=recorder)
        await served.add_number(served.phone_number_id, access_token=served.access_token)
        yield served


def _s3_server_script() -> Any:
    return load_script("s3_server")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real MinIO (scripts/s3_server.py: built once with go install, reused) on a free port, for the session."""
    script = _s3_server_script()
    with script.running(script.install(), tmp_path_factory.mktemp("minio") / "data") as server:
        yield server


@pytest.fixture(scope="session")
def s3_client(s3_server: Any) -> Callable[..., contextlib.AbstractAsyncContextManager[Any]]:
    """Opens a plain aiobotocore S3 client on the test server (root credentials unless overridden)."""
    def open_client(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        options: dict[str, Any] = {
            "endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region,
            "aws_access_key_id": s3_server.access_key, "aws_secret_access_key": s3_server.secret_key,
            "config": AioConfig(s3={"addressing_style": "path"})} | overrides
        return get_session().create_client("s3", **options)

    return open_client


@pytest_asyncio.fixture(scope="module")
async def s3_bucket(s3_client: Callable[..., contextlib.AbstractAsyncContextManager[Any]]) -> str:
    """A fresh bucket of this module (the service never creates buckets: operators do)."""
    name = f"eva-media-{uuid.uuid4().hex[:12]}"
    async with s3_client() as client:
        await client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_settings(s3_server: Any) -> Callable[..., dict[str, Any]]:
    """The messaging settings of the S3 media store on the test server, for a bucket."""
    def settings(bucket: str, **overrides: Any) -> dict[str, Any]:
        return {
            "media_store": "s3", "media_s3_bucket": bucket, "media_s3_endpoint_url": s3_server.endpoint_url,
            "media_s3_region": s3_server.region, "media_s3_access_key_id": s3_server.access_key,
            "media_s3_secret_access_key": s3_server.secret_key, "media_s3_path_style": True} | overrides

    return settings


def _delivery(payload: dict[str, Any], *, tenant_id: str, phone_number_id: str = "106540352242922",
              delivery_id: str | None = None) -> EventEnvelope:
    """A `webhook.received` envelope as webhook-ingest writes it to wa.webhooks.v1."""
    return make_event(WEBHOOK_RECEIVED, tenant_id=tenant_id, data=WebhookReceived(
        delivery_id=delivery_id or f"dlv-{uuid.uuid4().hex}", phone_number_id=phone_number_id,
        received_at=datetime.now(UTC), payload=payload))


@pytest.fixture(scope="session")
def delivery() -> Callable[..., EventEnvelope]:
    return _delivery


def _text_payload(*messages: tuple[str, str, str, str], phone_number_id: str = "106540352242922",
                  timestamp: str = "1749416383") -> dict[str, Any]:
    """Meta's inbound text shape (§3.2) for (wa_id, name, wamid, body) messages, one contact per sender."""
    contacts = {wa_id: {"profile": {"name": name}, "wa_id": wa_id} for wa_id, name, _, _ in messages}
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "contacts": list(contacts.values()),
            "messages": [{"from": wa_id, "id": wamid, "timestamp": timestamp, "type": "text", "text": {"body": body}}
                         for wa_id, _, wamid, body in messages]}}]}]}


@pytest.fixture(scope="session")
def text_payload() -> Callable[..., dict[str, Any]]:
    return _text_payload


def _echo_payload(wa_id: str, wamid: str, body: str, *, phone_number_id: str = "106540352242922") -> dict[str, Any]:
    """Meta's coexistence echo (`smb_message_echoes`, §12): a text the business sent to `wa_id` from the app."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "smb_message_echoes", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "message_echoes": [{"from": "15550783881", "to": wa_id, "id": wamid, "timestamp": "1749416383",
                                "type": "text", "text": {"body": body}}]}}]}]}


@pytest.fixture(scope="session")
def echo_payload() -> Callable[..., dict[str, Any]]:
    return _echo_payload
