"""API keys at the edge (fakes only): the exchange cache keyed by the key's digest, its expiry margin, one exchange
for concurrent requests, re-exchange after a revocation, and which endpoints take keys."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
from eva.auth.v1 import auth_pb2
from eva.conversation.v1 import conversation_pb2
from eva_common.errors import Unauthenticated
from eva_testing.tokens import TestTokenIssuer
from gateway.apikeys import ApiKeyExchange
from gateway.app import GatewayApp
from gateway.auth import verify_token
from gateway.ratelimits import EdgeLimits

KEY = "eva_a1b2c3d4_the-secret-part-of-the-key"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Revocations:
    def __init__(self) -> None:
        self.before: dict[str, int] = {}

    async def revoked_before_ms(self, subject: str) -> int | None:
        return self.before.get(subject)


def _exchange_answer(issuer: TestTokenIssuer, *, expires_in: int = 300, scopes: tuple[str, ...] = ("messages:read",),
                     key_id: str = "k1", tenant_id: str = "t1") -> Callable[[Any], auth_pb2.ExchangeApiKeyResponse]:
    def answer(request: auth_pb2.ExchangeApiKeyRequest) -> auth_pb2.ExchangeApiKeyResponse:
        token = issuer.api_key_token(key_id=key_id, tenant_id=tenant_id, scopes=list(scopes), ttl=expires_in)
        return auth_pb2.ExchangeApiKeyResponse(access_token=token, expires_in=expires_in, tenant_id=tenant_id,
                                               scopes=list(scopes), key_id=key_id)

    return answer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_exchange(
    fake_clients: Any, issuer: TestTokenIssuer, limiter: Any, clock: Clock
) -> Callable[..., ApiKeyExchange]:
    def make(*, revocations: Revocations | None = None, max_entries: int = 100) -> ApiKeyExchange:
        limits = EdgeLimits(counter=limiter, user_per_minute=100, tenant_per_minute=100, auth_ip_per_minute=100)
        return ApiKeyExchange(clients=fake_clients, verify=partial(verify_token, issuer.verifier(revocations)),
                              limits=limits, max_entries=max_entries, clock=clock)

    return make


def _exchanges(fake_clients: Any) -> list[str]:
    return [request.api_key for name, request in fake_clients.auth.requests if name == "ExchangeApiKey"]


async def test_the_token_is_cached_under_the_keys_digest(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer, limiter: Any
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, scopes=("messages:read", "usage:read"))
    exchange = make_exchange()
    first = await exchange.principal(KEY, client_ip="198.51.100.1")
    second = await exchange.principal(KEY, client_ip="198.51.100.1")
    assert (first.kind, first.tenant_id, first.scopes) == ("api_key", "t1", ("messages:read", "usage:read"))
    assert second.token == first.token
    assert _exchanges(fake_clients) == [KEY] and fake_clients.tokens == [None]  # one public call, no bearer
    assert list(exchange._cache) == [hashlib.sha256(KEY.encode()).hexdigest()]
    assert KEY not in repr(exchange._cache)  # the raw key is never kept
    assert limiter.counts == {("api-key-ip", "198.51.100.1"): 1}  # only the exchange (cache miss) was counted


async def test_the_token_is_renewed_30_seconds_before_it_expires(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer, clock: Clock
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, expires_in=300)
    exchange = make_exchange()
    await exchange.principal(KEY, client_ip="ip")
    clock.now += 269
    await exchange.principal(KEY, client_ip="ip")
    assert len(_exchanges(fake_clients)) == 1
    clock.now += 1  # 270 s = 300 - 30
    await exchange.principal(KEY, client_ip="ip")
    assert len(_exchanges(fake_clients)) == 2


async def test_a_token_shorter_than_the_margin_is_not_cached(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, expires_in=30)
    exchange = make_exchange()
    for _ in range(3):
        assert (await exchange.principal(KEY, client_ip="ip")).is_api_key
    assert len(_exchanges(fake_clients)) == 3 and len(exchange) == 0


async def test_concurrent_requests_share_one_exchange(issuer: TestTokenIssuer, limiter: Any) -> None:
    release = asyncio.Event()
    calls: list[str] = []

    class SlowAuth:
        async def ExchangeApiKey(self, request: auth_pb2.ExchangeApiKeyRequest) -> Any:  # noqa: N802
            calls.append(request.api_key)
            await release.wait()
            return _exchange_answer(issuer)(request)

    class Clients:
        auth = SlowAuth()

        async def call(self, method: Any, request: Any, *, token: str | None) -> Any:
            return await method(request)

    limits = EdgeLimits(counter=limiter, user_per_minute=100, tenant_per_minute=100, auth_ip_per_minute=100)
    exchange = ApiKeyExchange(clients=Clients(), verify=partial(verify_token, issuer.verifier()),  # type: ignore
                              limits=limits, max_entries=10)
    waiting = [asyncio.create_task(exchange.principal(KEY, client_ip="ip")) for _ in range(5)]
    await asyncio.sleep(0)  # let them all reach the exchange (a scheduling step, not an assertion)
    waiting[0].cancel()  # one caller giving up does not cancel the exchange the others wait for
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert {principal.token for principal in results[1:]} == {results[1].token}  # type: ignore[union-attr]
    assert calls == [KEY]


async def test_a_revoked_cached_token_is_exchanged_again(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    revocations = Revocations()
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, key_id="k9")
    exchange = make_exchange(revocations=revocations)
    first = await exchange.principal(KEY, client_ip="ip")
    revocations.before[first.subject] = int(time.time() * 1000) + 1
    await asyncio.sleep(0.002)  # so the next token is issued after the revocation time
    second = await exchange.principal(KEY, client_ip="ip")
    assert second.token != first.token and len(_exchanges(fake_clients)) == 2

    fake_clients.auth.responses["ExchangeApiKey"] = Unauthenticated("unknown key", code="API_KEY_INVALID")
    assert exchange.forget_key("k9") == 1 and len(exchange) == 0
    with pytest.raises(Unauthenticated) as caught:
        await exchange.principal(KEY, client_ip="ip")
    assert caught.value.code == "API_KEY_INVALID"


async def test_the_cache_is_bounded(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer)
    exchange = make_exchange(max_entries=2)
    for key in ("eva_1_a", "eva_2_b", "eva_3_c"):
        await exchange.principal(key, client_ip="ip")
    assert len(exchange) == 2
    await exchange.principal("eva_1_a", client_ip="ip")  # the oldest was evicted
    assert _exchanges(fake_clients) == ["eva_1_a", "eva_2_b", "eva_3_c", "eva_1_a"]


async def test_an_exchange_that_returns_a_user_token_is_refused(
    make_exchange: Callable[..., ApiKeyExchange], fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    token = issuer.user_token(user_id="u1", tenant_id="t1")
    fake_clients.auth.responses["ExchangeApiKey"] = auth_pb2.ExchangeApiKeyResponse(access_token=token,
                                                                                    expires_in=300)
    with pytest.raises(Unauthenticated) as caught:
        await make_exchange().principal(KEY, client_ip="ip")
    assert caught.value.code == "TOKEN_INVALID"


# ------------------------------------------------------------------ over HTTP


def _conversation() -> conversation_pb2.Conversation:
    return conversation_pb2.Conversation(id="c1", tenant_id="t1", contact_id="k1", status="open")


@pytest.mark.parametrize("header", [{"X-Api-Key": KEY}, {"Authorization": f"ApiKey {KEY}"},
                                    {"Authorization": f"apikey  {KEY} "}])
async def test_a_key_reads_a_conversation(
    http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer, header: dict[str, str]
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, scopes=("conversations:read",))
    fake_clients.conversation.responses["GetConversation"] = _conversation()
    response = await http.get("/api/conversations/c1", headers=header)
    assert response.status_code == 200 and response.json()["id"] == "c1"
    forwarded = fake_clients.tokens[-1]
    assert forwarded is not None and forwarded != KEY and forwarded.count(".") == 2  # the exchanged JWT


async def test_keys_are_refused_on_user_endpoints_before_any_exchange(
    http: httpx.AsyncClient, fake_clients: Any
) -> None:
    for path in ("/api/users", "/api/tenant", "/api/audit-logs", "/auth/me"):
        response = await http.get(path, headers={"X-Api-Key": KEY})
        assert (response.status_code, response.json()["code"]) == (403, "API_KEY_NOT_ALLOWED"), path
    assert fake_clients.tokens == []


async def test_scope_ambiguity_and_missing_credentials(
    http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    fake_clients.auth.responses["ExchangeApiKey"] = _exchange_answer(issuer, scopes=("conversations:read",))
    no_scope = await http.get("/api/messages", params={"conversationId": "c1"}, headers={"X-Api-Key": KEY})
    assert (no_scope.status_code, no_scope.json()["code"]) == (403, "SCOPE_MISSING")
    both = await http.get("/api/usage", headers={"X-Api-Key": KEY, "Authorization": "Bearer x.y.z"})
    assert (both.status_code, both.json()["code"]) == (400, "AMBIGUOUS_CREDENTIALS")
    two_keys = await http.get("/api/usage", headers={"X-Api-Key": KEY, "Authorization": "ApiKey eva_other_key"})
    assert (two_keys.status_code, two_keys.json()["code"]) == (400, "AMBIGUOUS_CREDENTIALS")
    nothing = await http.get("/api/usage")
    assert (nothing.status_code, nothing.json()["code"]) == (401, "UNAUTHENTICATED")
    service = await http.get("/api/usage", headers={"Authorization": f"Bearer {issuer.service_token()}"})
    assert (service.status_code, service.json()["code"]) == (401, "TOKEN_INVALID")
    assert [name for name, _ in fake_clients.auth.requests] == ["ExchangeApiKey"]
    assert fake_clients.tenant.requests == [] and fake_clients.messaging.requests == []


async def test_revoked_user_tokens_are_refused(
    build_gateway: Callable[..., GatewayApp], fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    revocations = Revocations()
    gateway = build_gateway(revocations=revocations)
    token = issuer.user_token(user_id="u1", tenant_id="t1")
    revocations.before["u1"] = int(time.time() * 1000) + 1
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.asgi), base_url="http://gateway") as client:
        response = await client.get("/api/tenant", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["code"]) == (401, "TOKEN_REVOKED")
    assert fake_clients.tokens == []
