"""Edge rate limits on the real ASGI app with an in-memory counter: per user and tenant on /api/*, per IP on
/auth/*, 429 problems with Retry-After and RateLimit-* headers; upstream throttles keep their Retry-After; a Redis
outage is a 503, never an open door."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_common.auth import Principal
from eva_common.errors import ResourceExhausted, Unavailable
from eva_common.ratelimit import Decision, Limit
from eva_testing.tokens import TestTokenIssuer
from gateway.app import GatewayApp
from gateway.ratelimits import EdgeLimits, RateLimited
from redis.exceptions import ConnectionError as RedisConnectionError


def _principal(subject: str = "u1", tenant_id: str | None = "t1") -> Principal:
    return Principal(subject=subject, kind="user", role="admin", tenant_id=tenant_id, token="t", token_id="j",
                     issued_at=0, expires_at=0)


class Counter:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.hits: list[tuple[str, str, Limit]] = []

    async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        self.hits.append((name, key, limit))
        count = self.counts.get(name, 1)
        return Decision(count <= limit.requests, count, 9)


async def test_the_quota_reported_is_the_one_closest_to_running_out() -> None:
    counter = Counter({"user": 2, "tenant": 95})
    limits = EdgeLimits(counter=counter, user_per_minute=10, tenant_per_minute=100, auth_ip_per_minute=5)
    quota = await limits.caller(_principal())
    assert (quota.limit, quota.remaining) == (100, 5)  # the user still has 8
    assert [(name, key, limit.requests, limit.window_seconds) for name, key, limit in counter.hits] == [
        ("user", "u1", 10, 60), ("tenant", "t1", 100, 60)]


async def test_a_refusal_names_its_limit_and_stops_counting() -> None:
    counter = Counter({"user": 11})
    limits = EdgeLimits(counter=counter, user_per_minute=10, tenant_per_minute=100, auth_ip_per_minute=5)
    with pytest.raises(RateLimited) as caught:
        await limits.caller(_principal())
    error = caught.value
    assert (error.code, error.http_status, error.retry_after) == ("RATE_LIMITED", 429, 9)
    assert error.headers == {"RateLimit-Limit": "10", "RateLimit-Remaining": "0"}
    assert "user" in error.detail
    assert [name for name, _, _ in counter.hits] == ["user"]  # the tenant was not counted for a refused call


async def test_a_redis_outage_is_unavailable() -> None:
    class Broken:
        async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
            raise RedisConnectionError("connection refused")

    limits = EdgeLimits(counter=Broken(), user_per_minute=1, tenant_per_minute=1, auth_ip_per_minute=1)
    with pytest.raises(Unavailable) as caught:
        await limits.auth_call("198.51.100.1")
    assert caught.value.code == "UPSTREAM_UNAVAILABLE"


@pytest.fixture
async def tiny(build_gateway: Callable[..., GatewayApp]) -> AsyncIterator[httpx.AsyncClient]:
    gateway = build_gateway(rate_limit_user_per_minute=2, rate_limit_tenant_per_minute=3,
                            rate_limit_auth_ip_per_minute=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.asgi), base_url="http://gateway") as client:
        yield client


def _token(issuer: TestTokenIssuer, user_id: str, tenant_id: str = "t1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.user_token(user_id=user_id, tenant_id=tenant_id)}"}


async def test_api_calls_answer_429_past_the_user_limit(
    tiny: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    fake_clients.tenant.responses["GetTenant"] = tenant_pb2.Tenant(id="t1", name="Hotel", slug="h", status="active")
    alice = _token(issuer, "alice")
    first = await tiny.get("/api/tenant", headers=alice)
    second = await tiny.get("/api/tenant", headers=alice)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    refused = await tiny.get("/api/tenant", headers=alice)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == "42"  # what the limiter said
    assert refused.headers["ratelimit-remaining"] == "0"
    assert len(fake_clients.tenant.requests) == 2  # the refused call never reached the upstream

    bob = await tiny.get("/api/tenant", headers=_token(issuer, "bob"))
    assert bob.status_code == 200  # the tenant's 3rd call: allowed
    carol = await tiny.get("/api/tenant", headers=_token(issuer, "carol"))
    assert carol.status_code == 429 and "tenant" in carol.json()["detail"]
    other_tenant = await tiny.get("/api/tenant", headers=_token(issuer, "dave", tenant_id="t2"))
    assert other_tenant.status_code != 429


async def test_auth_calls_are_counted_per_ip(tiny: httpx.AsyncClient, fake_clients: Any, limiter: Any) -> None:
    fake_clients.auth.responses["Logout"] = object()
    for _ in range(2):
        assert (await tiny.post("/auth/logout", json={"refreshToken": "r"})).status_code == 204
    refused = await tiny.post("/auth/login", json={"email": "a@hotel.test", "password": "x"})
    assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
    assert limiter.counts[("auth-ip", "127.0.0.1")] == 3
    assert fake_clients.auth.requests and all(name == "Logout" for name, _ in fake_clients.auth.requests)


async def test_an_upstream_throttle_keeps_retry_after(http: httpx.AsyncClient, fake_clients: Any) -> None:
    fake_clients.auth.responses["Login"] = ResourceExhausted("slow down", code="LOGIN_THROTTLED", retry_after=120)
    response = await http.post("/auth/login", json={"email": "a@hotel.test", "password": "x"})
    assert (response.status_code, response.json()["code"]) == (429, "LOGIN_THROTTLED")
    assert response.headers["retry-after"] == "120"
    assert response.headers["ratelimit-limit"] == "60"  # the per-IP limit counted this call


async def test_a_limiter_outage_is_a_503(build_gateway: Callable[..., GatewayApp], issuer: TestTokenIssuer,
                                         fake_clients: Any, limiter: Any) -> None:
    async def broken(*_: Any, **__: Any) -> Decision:
        raise RedisConnectionError("down")

    limiter.hit = broken
    gateway = build_gateway()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.asgi), base_url="http://gateway") as client:
        response = await client.get("/api/tenant", headers=_token(issuer, "u1"))
    assert (response.status_code, response.json()["code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert fake_clients.tenant.requests == []
