"""Unit-test fixtures: the real gateway ASGI app with fake upstream clients (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from eva_common.ratelimit import Decision, Limit
from eva_testing.tokens import TestTokenIssuer
from gateway.app import GatewayApp, create_gateway_app
from gateway.settings import Settings


class FakeMethod:
    def __init__(self, service: FakeService, name: str) -> None:
        self.service = service
        self.name = name

    async def __call__(self, request: Any) -> Any:
        self.service.requests.append((self.name, request))
        outcome = self.service.responses.get(self.name)
        if outcome is None:
            raise AssertionError(f"unexpected call {self.service.name}.{self.name}")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome(request) if callable(outcome) else outcome


class FakeService:
    """A stand-in for a gRPC stub: each RPC answers what `responses[name]` says (a value, a factory or an error)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.responses: dict[str, Any] = {}
        self.requests: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> FakeMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return FakeMethod(self, name)


@dataclass
class FakeClients:
    auth: FakeService = field(default_factory=lambda: FakeService("auth"))
    tenant: FakeService = field(default_factory=lambda: FakeService("tenant"))
    conversation: FakeService = field(default_factory=lambda: FakeService("conversation"))
    messaging: FakeService = field(default_factory=lambda: FakeService("messaging"))
    webhooks: FakeService = field(default_factory=lambda: FakeService("n8n-integration"))
    tokens: list[str | None] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    async def call(self, method: FakeMethod, request: Any, *, token: str | None) -> Any:
        self.tokens.append(token)
        return await method(request)

    async def serving(self, name: str) -> bool:
        return name not in self.down

    async def close(self) -> None:
        return None


class MemoryLimiter:
    """An in-memory stand-in for eva_common.ratelimit.RateLimiter: a plain counter per (name, key), no window."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        count = self.counts.get((name, key), 0) + 1
        self.counts[(name, key)] = count
        return Decision(count <= limit.requests, count, 0 if count <= limit.requests else 42)


class FakeRedis:
    """Enough of redis.asyncio.Redis for the REST unit tests (presence and replay are tested on real Redis)."""

    async def ping(self) -> bool:
        return True

    def register_script(self, script: str) -> Callable[..., Awaitable[Any]]:
        async def unavailable(**_: Any) -> Any:
            raise ConnectionError("no Redis in unit tests")

        return unavailable


def unit_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service_client_secret": "unit-test-client-secret",
        "redis_url": "redis://127.0.0.1:1/0",
        "frontend_url": "http://app.example.test, http://localhost:5173",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def issuer() -> TestTokenIssuer:
    return TestTokenIssuer()


@pytest.fixture
def fake_clients() -> FakeClients:
    return FakeClients()


@pytest.fixture
def limiter() -> MemoryLimiter:
    return MemoryLimiter()


@pytest.fixture
def build_gateway(
    issuer: TestTokenIssuer, fake_clients: FakeClients, limiter: MemoryLimiter
) -> Callable[..., GatewayApp]:
    def build(*, revocations: Any = None, **overrides: Any) -> GatewayApp:
        return create_gateway_app(
            settings=unit_settings(**overrides), clients=fake_clients,  # type: ignore[arg-type]
            verifier=issuer.verifier(revocations), redis=FakeRedis(), limiter=limiter,  # type: ignore[arg-type]
        )

    return build


@pytest.fixture
async def http(build_gateway: Callable[..., GatewayApp]) -> AsyncIterator[httpx.AsyncClient]:
    gateway = build_gateway()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.asgi), base_url="http://gateway") as client:
        yield client
