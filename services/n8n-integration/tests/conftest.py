"""Fixtures of the n8n-integration service's tests: the test profile's real PostgreSQL and Kafka, a fresh migrated
database per module, the service built by its own composition root (`N8nApp`) with test settings (fast retries,
loopback allowed unless a test says otherwise), a real local HTTP receiver that can be told to fail, time out,
redirect or succeed, and builders of Eva's events."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from eva_common.audit import Actor
from eva_common.auth import Principal
from eva_events import conversation as conversation_events
from eva_events import messaging
from eva_events.envelope import EventEnvelope, make_event
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import TestInfra, test_infra
from eva_testing.waiting import KafkaTools
from eva_testing.waiting import eventually as _eventually
from n8n_service.main import N8nApp
from n8n_service.settings import Settings
from n8n_service.ssrf import Resolver, system_resolver

SERVICE_DIR = Path(__file__).resolve().parents[1]
ENCRYPTION_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


@pytest.fixture(scope="session")
def kafka(infra: TestInfra) -> KafkaTools:
    return KafkaTools(infra.kafka_bootstrap)


@pytest_asyncio.fixture(scope="module")
async def database(infra: TestInfra) -> AsyncIterator[TestDatabase]:
    async with migrated_database(infra, SERVICE_DIR, "n8n_test") as db:
        yield db


@pytest_asyncio.fixture(scope="module")
async def app_db(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the app role, for assertions under row-level security (`rows` sets the tenant). Not the
    owner's: the owner may read every tenant's deliveries (the policies of the claim function's definer)."""
    connection = await asyncpg.connect(database.app_dsn)
    yield connection
    await connection.close()


async def rows(connection: asyncpg.Connection, tenant_id: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """A query under a tenant (row-level security)."""
    async with connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        return list(await connection.fetch(query, *args))


def settings_for(database: TestDatabase, infra: TestInfra, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database.app_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "redis_url": infra.redis_url,
        "encryption_keys": {"k1": ENCRYPTION_KEY},
        "encryption_active_key": "k1",
        "environment": "test",
        "service_client_secret": "n8n-integration-test-client-secret",
        "http_port": 0,
        "shutdown_grace_seconds": 1,
        "webhook_allow_http": True,
        "webhook_allow_private_networks": ["127.0.0.0/8", "::1/128"],
        "webhook_timeout_seconds": 0.5,
        "webhook_retry_base_seconds": 0.1,
        "webhook_retry_max_seconds": 0.4,
        "webhook_retry_jitter": 0.0,
        "webhook_max_age_seconds": 120,
        "webhook_pause_after_failures": 1000,
        "webhook_pause_min_failing_seconds": 0,
        "webhook_poll_seconds": 0.05,
        "consumer_group": f"n8n-test-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return Settings(**values)


AppFactory = Callable[..., N8nApp]


@pytest_asyncio.fixture
async def make_app(database: TestDatabase, infra: TestInfra) -> AsyncIterator[AppFactory]:
    """Builds the service as main.py does (not started: tests drive `app.delivery.run_once()` and `app.fanout`
    themselves), with settings overrides and an optional resolver; closes what it built."""
    built: list[N8nApp] = []

    def build(*, resolver: Resolver = system_resolver, **overrides: Any) -> N8nApp:
        app = N8nApp(settings_for(database, infra, **overrides), resolver=resolver)
        built.append(app)
        return app

    yield build
    for app in built:
        await app.sender.close()
        await app.engine.dispose()
    # the module's tests share the database and the worker's lease is cross-tenant: a test's unfinished deliveries
    # must not be attempted by the next test's worker (the owner may, through the claim function's policies)
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await owner.execute("UPDATE webhook_deliveries SET state = 'dead', next_attempt_at = NULL "
                            "WHERE state = 'pending'")
    finally:
        await owner.close()


def admin(tenant_id: str, *, user_id: str | None = None, role: str = "admin") -> Actor:
    return Actor(principal=Principal(subject=user_id or f"user-{uuid.uuid4().hex[:8]}", kind="user", role=role,
                                     tenant_id=tenant_id, token="", token_id="", issued_at=0, expires_at=0))


def new_tenant() -> str:
    return str(uuid.uuid4())


# --- the receiver --------------------------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A real HTTP server on a free loopback port. Each path answers the steps it was scripted (`script`), in order,
    then `ok`: `ok` 200, `fail` 500, `timeout` holds the request for `hold_seconds` (past the client's timeout)
    then 200, `redirect:<location>` 302."""

    port: int = 0
    hold_seconds: float = 3.0
    requests: list[Received] = field(default_factory=list)
    steps: dict[str, list[str]] = field(default_factory=dict)

    def script(self, path: str, *steps: str) -> None:
        self.steps.setdefault(path, []).extend(steps)

    def script_event(self, event_id: str, *steps: str) -> None:
        """Steps for the requests of one event (by X-Eva-Event-Id), before the path's."""
        self.steps.setdefault(f"event:{event_id}", []).extend(steps)

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Received(path=request.path, headers=dict(request.headers), body=body,
                                      at=time.monotonic()))
        queue = self.steps.get(f"event:{request.headers.get('X-Eva-Event-Id')}") or self.steps.get(request.path) or []
        step = queue.pop(0) if queue else "ok"
        if step == "fail":
            return web.Response(status=500, text="boom")
        if step == "timeout":
            await asyncio.sleep(self.hold_seconds)
            return web.Response(status=200)
        if step.startswith("redirect:"):
            return web.Response(status=302, headers={"Location": step.removeprefix("redirect:")})
        return web.Response(status=200, text="ok")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        await runner.cleanup()


def fixed_resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    """A resolver that answers from a table (each host's current answers; tests change them to rebind)."""

    async def resolve(host: str, _port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"{host} does not resolve")
        return list(answers[host])

    return resolve


# --- Eva's events --------------------------------------------------------------------------------------------------
def message_received(tenant_id: str, conversation_id: str, *, text: str = "hello",
                     source: str = messaging.SOURCE_WHATSAPP, event_type: str = messaging.MESSAGE_RECEIVED,
                     status: str = "RECEIVED") -> EventEnvelope:
    now = datetime.now(UTC)
    view = messaging.MessageView(
        id=str(uuid.uuid4()), conversation_id=conversation_id, contact_id=str(uuid.uuid4()),
        wamid=f"wamid.{uuid.uuid4().hex}", direction="inbound" if source == messaging.SOURCE_WHATSAPP else "outbound",
        type="text", status=status, content={"text": {"body": text}}, sent_at=now, created_at=now,
        contact=messaging.ContactSnapshot(id=str(uuid.uuid4()), wa_id="16505550000", name="Guest"), source=source)
    return make_event(event_type, tenant_id=tenant_id, data=view)


def conversation_assigned(tenant_id: str, conversation_id: str, attendant_id: str | None) -> EventEnvelope:
    return make_event(conversation_events.CONVERSATION_ASSIGNED, tenant_id=tenant_id,
                      data=conversation_events.ConversationAssigned(
                          conversation_id=conversation_id, attendant_id=attendant_id, previous_attendant_id=None))


async def pump(app: N8nApp, until: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:
    """Runs the delivery worker's passes until `until()` holds."""

    async def step() -> Any:
        await app.delivery.run_once()
        return await until()

    return await _eventually(step, timeout=timeout, interval=0.02)


class Kit:
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""

    rows = staticmethod(rows)
    admin = staticmethod(admin)
    new_tenant = staticmethod(new_tenant)
    fixed_resolver = staticmethod(fixed_resolver)
    message_received = staticmethod(message_received)
    conversation_assigned = staticmethod(conversation_assigned)
    pump = staticmethod(pump)
    settings_for = staticmethod(settings_for)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
