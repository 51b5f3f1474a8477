"""API keys at the edge, through the real gateway and real gRPC fakes: a key is exchanged at auth once and then
served from the cache, the exchanged token (never the key) goes downstream, only the endpoints that accept keys take
them (403 API_KEY_NOT_ALLOWED elsewhere), scopes are enforced, and a key revoked here stops working at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva_common.auth import RedisRevocations

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_of(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, response.json()["code"]


async def test_a_key_is_exchanged_once_and_its_token_forwarded(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    account = make_account()
    seed_conversation(account, "conv-key-1", messages=2)
    key, secret = directory.add_api_key(tenant_id=account.tenant_id,
                                        scopes=["messages:read", "conversations:read", "usage:read"])
    before = len(directory.exchanges)

    messages = await http.get("/api/messages", params={"conversationId": "conv-key-1"}, headers={"X-Api-Key": secret})
    assert messages.status_code == 200, messages.text
    assert [item["id"] for item in messages.json()["items"]] == ["conv-key-1-m0", "conv-key-1-m1"]
    conversation = await http.get("/api/conversations/conv-key-1", headers={"Authorization": f"ApiKey {secret}"})
    assert conversation.status_code == 200 and conversation.json()["tenantId"] == account.tenant_id
    nested = await http.get("/api/conversations/conv-key-1/messages", headers={"X-Api-Key": secret})
    assert nested.status_code == 200 and len(nested.json()["items"]) == 2
    usage = await http.get("/api/usage", headers={"X-Api-Key": secret})
    assert usage.status_code == 200 and usage.json()["limits"]["seats"] == 5

    assert directory.exchanges[before:] == [key.id]  # one exchange; the cache served the other three calls
    exchange = directory.metadata_of("ExchangeApiKey")[-1]
    assert exchange["x-client-ip"] == "127.0.0.1" and "authorization" not in exchange
    forwarded = directory.metadata_of("ListMessages")[-1]["authorization"]
    assert forwarded.startswith("Bearer ey") and secret not in forwarded  # the exchanged JWT, never the key


async def test_keys_are_refused_where_they_are_not_accepted(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    directory = upstreams.directory
    account = make_account()
    _, secret = directory.add_api_key(tenant_id=account.tenant_id, scopes=["messages:read", "conversations:write"])
    exchanges, upstream_calls = len(directory.exchanges), len(directory.forwarded_metadata)
    attempts = [
        ("GET", "/api/users", None), ("POST", "/api/users", {"name": "x"}), ("GET", "/api/users/u-1", None),
        ("GET", "/api/tenant", None), ("PATCH", "/api/tenant", {"name": "x"}), ("GET", "/api/tenants", None),
        ("POST", "/api/tenant/api-keys", {"name": "x", "scopes": ["usage:read"]}),
        ("GET", "/api/tenant/api-keys", None), ("DELETE", "/api/tenant/api-keys/k-1", None),
        ("GET", "/api/audit-logs", None), ("POST", "/api/tenants/t-1/suspend", None),
        ("GET", "/api/tenant/whatsapp", None), ("PUT", "/api/tenant/whatsapp", {}), ("GET", "/auth/me", None),
    ]
    for method, path, body in attempts:
        for headers in ({"X-Api-Key": secret}, {"Authorization": f"ApiKey {secret}"}):
            response = await http.request(method, path, json=body, headers=headers)
            assert code_of(response) == (403, "API_KEY_NOT_ALLOWED"), (method, path)
    # refused before anything was exchanged or called upstream
    assert (len(directory.exchanges), len(directory.forwarded_metadata)) == (exchanges, upstream_calls)

    # the exchanged token itself, sent as a bearer, is no way around it
    token = directory.issuer.api_key_token(key_id="k-x", tenant_id=account.tenant_id, scopes=["messages:read"])
    assert code_of(await http.get("/api/tenant", headers=bearer(token))) == (403, "API_KEY_NOT_ALLOWED")


async def test_scopes_unknown_keys_and_foreign_data(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    mine, theirs = make_account(), make_account()
    seed_conversation(theirs, "conv-key-foreign", messages=1)
    _, secret = directory.add_api_key(tenant_id=mine.tenant_id, scopes=["conversations:read"])

    assert code_of(await http.get("/api/usage", headers={"X-Api-Key": secret})) == (403, "SCOPE_MISSING")
    assert code_of(await http.get("/api/messages", params={"conversationId": "conv-key-foreign"},
                                  headers={"X-Api-Key": secret})) == (403, "SCOPE_MISSING")
    assert code_of(await http.get("/api/conversations/conv-key-foreign", headers={"X-Api-Key": secret})) == (
        404, "CONVERSATION_NOT_FOUND")
    assert code_of(await http.get("/api/conversations/c1", headers={"X-Api-Key": "eva_deadbeef_not-a-key"})) == (
        401, "API_KEY_INVALID")
    assert code_of(await http.get("/api/conversations/c1", headers={
        "X-Api-Key": secret, "Authorization": f"Bearer {mine.token}"})) == (400, "AMBIGUOUS_CREDENTIALS")


async def test_a_key_revoked_through_the_gateway_stops_at_once(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    admin = make_account(role="admin")
    seed_conversation(admin, "conv-key-revoke")
    created = await http.post("/api/tenant/api-keys", headers=bearer(admin.token),
                              json={"name": "zapier", "scopes": ["conversations:read"]})
    key = created.json()
    assert (await http.get("/api/conversations/conv-key-revoke", headers={"X-Api-Key": key["key"]})).status_code == 200
    assert (await http.get("/api/conversations/conv-key-revoke", headers={"X-Api-Key": key["key"]})).status_code == 200
    assert directory.exchanges.count(key["id"]) == 1

    assert (await http.delete(f"/api/tenant/api-keys/{key['id']}", headers=bearer(admin.token))).status_code == 204
    refused = await http.get("/api/conversations/conv-key-revoke", headers={"X-Api-Key": key["key"]})
    assert code_of(refused) == (401, "API_KEY_INVALID")  # not served from the cache


async def test_short_lived_exchanges_are_not_cached(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    account = make_account()
    seed_conversation(account, "conv-key-short")
    key, secret = directory.add_api_key(tenant_id=account.tenant_id, scopes=["conversations:read"])
    directory.exchange_ttl = 25  # under the 30 s margin: the token is used once and never cached
    try:
        for _ in range(3):
            response = await http.get("/api/conversations/conv-key-short", headers={"X-Api-Key": secret})
            assert response.status_code == 200
    finally:
        directory.exchange_ttl = 300
    assert directory.exchanges.count(key.id) == 3


async def test_key_calls_are_rate_limited_per_key(
    gateway_factory: Callable[..., Any], make_account: Callable[..., Any], upstreams: Any,
    seed_conversation: Callable[..., None]
) -> None:
    running = await gateway_factory(rate_limit_user_per_minute=2)
    account = make_account()
    seed_conversation(account, "conv-key-limit")
    _, secret = upstreams.directory.add_api_key(tenant_id=account.tenant_id, scopes=["conversations:read"])
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        statuses = [(await client.get("/api/conversations/conv-key-limit", headers={"X-Api-Key": secret})).status_code
                    for _ in range(2)]
        refused = await client.get("/api/conversations/conv-key-limit", headers={"X-Api-Key": secret})
        other_user = await client.get("/api/conversations/conv-key-limit", headers=bearer(account.token))
    assert statuses == [200, 200]
    assert code_of(refused) == (429, "RATE_LIMITED") and int(refused.headers["retry-after"]) >= 1
    assert other_user.status_code == 200  # the key is its own "user"; the tenant still has room


async def test_a_key_revoked_elsewhere_is_refused_by_every_replica(
    http: httpx.AsyncClient, gateway_factory: Callable[..., Any], make_account: Callable[..., Any], upstreams: Any,
    redis: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    account = make_account()
    seed_conversation(account, "conv-key-elsewhere")
    key, secret = directory.add_api_key(tenant_id=account.tenant_id, scopes=["conversations:read"])
    replica = await gateway_factory()
    async with httpx.AsyncClient(base_url=replica.url, timeout=10) as other:
        for client in (http, other):  # each replica exchanges once and caches the token
            for _ in range(2):
                assert (await client.get("/api/conversations/conv-key-elsewhere",
                                         headers={"X-Api-Key": secret})).status_code == 200
        assert directory.exchanges.count(key.id) == 2

        # what the tenant service does when the key is revoked through any replica
        key.revoked_at = "2026-11-29T11:00:00Z"
        await RedisRevocations(redis).revoke(f"apikey:{key.id}", at_ms=int(time.time() * 1000) + 1)
        for client in (http, other):
            refused = await client.get("/api/conversations/conv-key-elsewhere", headers={"X-Api-Key": secret})
            assert code_of(refused) == (401, "API_KEY_INVALID")  # the cached token failed, auth refused the key
