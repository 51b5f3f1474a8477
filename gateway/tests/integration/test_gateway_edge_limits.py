"""Rate limits at the edge, in the real Redis of the test profile and shared by replicas: per user and per tenant on
/api/*, per client IP on /auth/*; and an upstream's RESOURCE_EXHAUSTED (LOGIN_THROTTLED) keeps its Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

THROTTLED_EMAIL = "throttled@hotel.example"  # the fake auth answers LOGIN_THROTTLED with retry_after=37


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_rate_limited(response: httpx.Response, *, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "RATE_LIMITED" and response.json()["status"] == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert (response.headers["ratelimit-limit"], response.headers["ratelimit-remaining"]) == (str(limit), "0")


async def test_the_user_limit_is_shared_by_two_replicas(
    gateway_factory: Callable[..., Any], make_account: Callable[..., Any]
) -> None:
    shared = {"rate_limit_user_per_minute": 3, "rate_limit_prefix": f"rl:gateway-test:{uuid.uuid4().hex[:8]}"}
    first, second = await gateway_factory(**shared), await gateway_factory(**shared)
    account = make_account()
    colleague = make_account(tenant_id=account.tenant_id)
    async with httpx.AsyncClient(timeout=10) as client:
        answers = [await client.get(f"{replica.url}/api/tenant", headers=bearer(account.token))
                   for replica in (first, second, first)]
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert [answer.headers["ratelimit-remaining"] for answer in answers] == ["2", "1", "0"]
        assert all(answer.headers["ratelimit-limit"] == "3" for answer in answers)

        refused = await client.get(f"{second.url}/api/tenant", headers=bearer(account.token))
        assert_rate_limited(refused, limit=3)
        assert (await client.get(f"{first.url}/api/users", headers=bearer(account.token))).status_code == 429
        # per user: a colleague of the same tenant is not affected
        assert (await client.get(f"{second.url}/api/tenant", headers=bearer(colleague.token))).status_code == 200


async def test_the_tenant_limit_counts_every_user_of_the_tenant(
    gateway_factory: Callable[..., Any], make_account: Callable[..., Any]
) -> None:
    running = await gateway_factory(rate_limit_tenant_per_minute=4)
    alice = make_account()
    bob = make_account(tenant_id=alice.tenant_id)
    outsider = make_account()
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        for account in (alice, bob, alice, bob):
            assert (await client.get("/api/tenant", headers=bearer(account.token))).status_code == 200
        refused = await client.get("/api/tenant/whatsapp", headers=bearer(alice.token))
        assert_rate_limited(refused, limit=4)
        assert "tenant" in refused.json()["detail"]
        assert (await client.get("/api/tenant", headers=bearer(outsider.token))).status_code == 200


async def test_auth_calls_are_limited_per_client_ip(
    gateway_factory: Callable[..., Any], upstreams: Any
) -> None:
    running = await gateway_factory(rate_limit_auth_ip_per_minute=2)
    login = {"email": "nobody@hotel.example", "password": "wrong-password"}
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        for _ in range(2):
            allowed = await client.post("/auth/login", json=login)
            assert allowed.status_code == 401 and allowed.headers["ratelimit-limit"] == "2"
        reached = len(upstreams.directory.metadata_of("Login"))
        refused = await client.post("/auth/login", json=login)
        assert_rate_limited(refused, limit=2)
        # an X-Forwarded-For from an untrusted peer does not make a new client
        spoofed = await client.post("/auth/refresh", json={"refreshToken": "x"},
                                    headers={"X-Forwarded-For": "203.0.113.77"})
        assert spoofed.status_code == 429
        assert len(upstreams.directory.metadata_of("Login")) == reached  # refused at the edge


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    gateway_factory: Callable[..., Any]
) -> None:
    running = await gateway_factory(rate_limit_auth_ip_per_minute=1, trusted_proxies="127.0.0.1")
    login = {"email": "nobody@hotel.example", "password": "wrong-password"}
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        first = await client.post("/auth/login", json=login, headers={"X-Forwarded-For": "203.0.113.1"})
        other = await client.post("/auth/login", json=login, headers={"X-Forwarded-For": "203.0.113.2"})
        again = await client.post("/auth/login", json=login, headers={"X-Forwarded-For": "203.0.113.1"})
    assert (first.status_code, other.status_code) == (401, 401)
    assert_rate_limited(again, limit=1)


async def test_an_upstream_throttle_keeps_its_retry_after(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/login", json={"email": THROTTLED_EMAIL, "password": "whatever-it-is"})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "LOGIN_THROTTLED"
    assert response.headers["retry-after"] == "37"
