"""REST through the real gateway (uvicorn) to real gRPC servers running fake upstream services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from eva_testing.infra import free_port

pytestmark = pytest.mark.integration

SESSION_KEYS = {"accessToken", "refreshToken", "expiresIn", "user", "tenant"}
USER_KEYS = {"id", "tenantId", "name", "email", "role", "active", "createdAt"}
TENANT_KEYS = {"id", "name", "slug", "status", "plan", "timezone", "locale", "createdAt"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_me_refresh_logout(http: httpx.AsyncClient, upstreams: Any) -> None:
    email = "front.desk@hotel-sol.example"
    registered = await http.post("/auth/register", json={
        "tenantName": "Hotel Sol", "name": "Front Desk", "email": email, "password": "a-good-password"})
    assert registered.status_code == 201
    session = registered.json()
    assert set(session) == SESSION_KEYS and set(session["user"]) == USER_KEYS and set(session["tenant"]) == TENANT_KEYS
    assert session["user"]["email"] == email and session["tenant"]["name"] == "Hotel Sol"
    assert session["user"]["role"] == "admin" and session["expiresIn"] == 900

    duplicate = await http.post("/auth/register", json={
        "tenantName": "Hotel Sol", "name": "Again", "email": email, "password": "a-good-password"})
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "EMAIL_TAKEN")

    wrong = await http.post("/auth/login", json={"email": email, "password": "not-the-password"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "INVALID_CREDENTIALS")
    assert wrong.headers["content-type"] == "application/problem+json"

    login = await http.post("/auth/login", json={"email": email, "password": "a-good-password"})
    assert login.status_code == 200 and set(login.json()) == SESSION_KEYS

    me = await http.get("/auth/me", headers=bearer(login.json()["accessToken"]))
    assert me.status_code == 200
    assert me.json()["user"]["id"] == session["user"]["id"] and me.json()["tenant"]["id"] == session["tenant"]["id"]
    assert ("GetMe", f"Bearer {login.json()['accessToken']}") in upstreams.directory.forwarded_tokens

    refreshed = await http.post("/auth/refresh", json={"refreshToken": login.json()["refreshToken"]})
    assert refreshed.status_code == 200 and set(refreshed.json()) == SESSION_KEYS
    assert refreshed.json()["refreshToken"] != login.json()["refreshToken"]
    reused = await http.post("/auth/refresh", json={"refreshToken": login.json()["refreshToken"]})
    assert (reused.status_code, reused.json()["code"]) == (401, "REFRESH_TOKEN_REUSED")

    logout = await http.post("/auth/logout", json={"refreshToken": refreshed.json()["refreshToken"]})
    assert logout.status_code == 204 and logout.content == b""
    after = await http.post("/auth/refresh", json={"refreshToken": refreshed.json()["refreshToken"]})
    assert (after.status_code, after.json()["code"]) == (401, "REFRESH_TOKEN_INVALID")


async def test_validation_errors_name_the_fields(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/register", json={"tenantName": "Hotel", "email": "nope", "password": "123"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_FAILED"
    assert {error["field"] for error in body["errors"]} == {"name", "email", "password"}


async def test_whatsapp_credentials_are_write_only(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    secrets = {"accessToken": "EAAGm0PX4ZCpsBAvery-secret-token-7f3a", "appSecret": "app-secret-0123456789abcdef",
               "verifyToken": "verify-token-xyz9"}
    empty = await http.get("/api/tenant/whatsapp", headers=bearer(admin.token))
    assert empty.status_code == 200 and empty.json()["configured"] is False
    stored = await http.put("/api/tenant/whatsapp", headers=bearer(admin.token), json={
        "phoneNumberId": "106540352242922", "wabaId": "102290129340398", "displayPhoneNumber": "15550783881",
        **secrets})
    assert stored.status_code == 200
    fetched = await http.get("/api/tenant/whatsapp", headers=bearer(admin.token))
    for response in (stored, fetched):
        body = response.json()
        assert body["configured"] is True and body["phoneNumberId"] == "106540352242922"
        assert body["accessToken"] == {"set": True, "last4": "7f3a"}
        assert body["appSecret"] == {"set": True, "last4": "cdef"}
        assert body["verifyToken"]["set"] is True
        assert set(body) == {"configured", "phoneNumberId", "wabaId", "displayPhoneNumber", "accessToken",
                             "appSecret", "verifyToken", "updatedAt", "coexistence", "throughputMps", "health"}
        for secret in secrets.values():
            assert secret not in response.text
    assert ("PutWhatsAppCredentials", f"Bearer {admin.token}") in upstreams.directory.forwarded_tokens

    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    refused = await http.put("/api/tenant/whatsapp", headers=bearer(attendant.token), json={
        "phoneNumberId": "1", "wabaId": "2", **secrets})
    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN_ROLE")
    unreadable = await http.get("/api/tenant/whatsapp", headers=bearer(attendant.token))
    assert (unreadable.status_code, unreadable.json()["code"]) == (403, "FORBIDDEN_ROLE")  # admin only


async def test_tenant_required_is_409(http: httpx.AsyncClient, issuer) -> None:
    token = issuer.user_token(user_id="u-x", tenant_id="tenant-without-settings", role="admin")
    response = await http.get("/api/tenant/whatsapp", headers=bearer(token))
    assert response.status_code == 409
    assert response.json()["code"] == "TENANT_REQUIRED" and response.json()["status"] == 409


def _seed_conversation(upstreams: Any, account: Any, conversation_id: str, messages: int) -> None:
    directory = upstreams.directory
    directory.conversations[conversation_id] = conversation_pb2.Conversation(
        id=conversation_id, tenant_id=account.tenant_id, contact_id=f"k-{conversation_id}", status="open",
        unread_count=messages, created_at="2026-11-29T09:00:00Z", updated_at="2026-11-29T10:00:00Z",
        contact=conversation_pb2.Contact(id=f"k-{conversation_id}", tenant_id=account.tenant_id,
                                         wa_id="351910000001", name="Guest"),
    )
    directory.messages[conversation_id] = [
        messaging_pb2.Message(
            id=f"{conversation_id}-m{i}", tenant_id=account.tenant_id, conversation_id=conversation_id,
            contact_id=f"k-{conversation_id}", wamid=f"wamid.{conversation_id}.{i}", direction="inbound",
            type="text", status="RECEIVED", content_json=f'{{"body": "message {i}"}}',
            sent_at=f"2026-11-29T10:00:0{i}Z", created_at=f"2026-11-29T10:00:0{i}Z")
        for i in range(messages)
    ]


async def test_conversation_and_its_messages(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    owner = make_account()
    stranger = make_account()
    _seed_conversation(upstreams, owner, "conv-rest-1", messages=3)

    conversation = await http.get("/api/conversations/conv-rest-1", headers=bearer(owner.token))
    assert conversation.status_code == 200
    body = conversation.json()
    assert (body["id"], body["tenantId"], body["unreadCount"], body["assignedTo"]) == (
        "conv-rest-1", owner.tenant_id, 3, None)
    assert body["contact"]["waId"] == "351910000001"

    foreign = await http.get("/api/conversations/conv-rest-1", headers=bearer(stranger.token))
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "CONVERSATION_NOT_FOUND"  # the upstream's code, carried over gRPC

    first = await http.get("/api/messages", params={"conversationId": "conv-rest-1", "limit": 2},
                           headers=bearer(owner.token))
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["items"]] == ["conv-rest-1-m0", "conv-rest-1-m1"]
    assert set(page["items"][0]) == {"id", "conversationId", "contactId", "wamid", "direction", "type", "status",
                                     "content", "media", "statusHistory", "pricingCategory", "context", "referral",
                                     "errors", "reactions", "sentAt", "createdAt", "updatedAt", "sender", "source",
                                     "attempts", "readAt", "category"}
    assert page["items"][1]["content"] == {"body": "message 1"} and page["nextCursor"]
    second = await http.get("/api/conversations/conv-rest-1/messages",
                            params={"limit": 2, "cursor": page["nextCursor"]}, headers=bearer(owner.token))
    assert [item["id"] for item in second.json()["items"]] == ["conv-rest-1-m2"]
    assert second.json()["nextCursor"] is None
    assert upstreams.messaging.requests[-1].cursor == page["nextCursor"]
    assert ("ListMessages", f"Bearer {owner.token}") in upstreams.directory.forwarded_tokens

    other_tenant = await http.get("/api/conversations/conv-rest-1/messages", headers=bearer(stranger.token))
    assert other_tenant.status_code == 404

    missing = await http.get("/api/messages", params={"limit": 500}, headers=bearer(owner.token))
    assert missing.status_code == 400
    assert {error["field"] for error in missing.json()["errors"]} == {"query.conversationId", "query.limit"}


async def test_a_leaked_foreign_conversation_is_still_not_found(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    owner = make_account()
    _seed_conversation(upstreams, owner, "leaky-rest", messages=0)
    response = await http.get("/api/conversations/leaky-rest", headers=bearer(make_account().token))
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")


async def test_requests_without_a_valid_token_never_reach_upstreams(
    http: httpx.AsyncClient, issuer, upstreams: Any
) -> None:
    before = len(upstreams.directory.forwarded_tokens)
    missing = await http.get("/api/conversations/c1")
    expired = await http.get("/api/conversations/c1",
                             headers=bearer(issuer.user_token(user_id="u", tenant_id="t", ttl=-60)))
    service = await http.get("/api/conversations/c1", headers=bearer(issuer.service_token()))
    assert [r.json()["code"] for r in (missing, expired, service)] == ["UNAUTHENTICATED", "TOKEN_EXPIRED",
                                                                       "TOKEN_INVALID"]
    assert all(r.status_code == 401 for r in (missing, expired, service))
    assert len(upstreams.directory.forwarded_tokens) == before


async def test_health_is_ok_when_everything_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "dependencies": {
        "redis": "ok", "auth": "ok", "tenant": "ok", "conversation": "ok", "messaging": "ok",
        "n8n-integration": "ok"}}
    assert (await http.get("/readyz")).status_code == 200
    assert (await http.get("/healthz")).status_code == 200
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200 and "eva_http_requests_total" in metrics.text


async def test_an_upstream_down_shows_in_health_and_as_503(
    gateway_factory: Callable[..., Any], make_account: Callable[..., Any]
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    running = await gateway_factory(messaging_grpc_target=dead, grpc_deadline_seconds=1.0)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] != "ok"
        assert health.json()["dependencies"] == {
            "redis": "ok", "auth": "ok", "tenant": "ok", "conversation": "ok", "messaging": "down",
            "n8n-integration": "ok"}
        listing = await client.get("/api/messages", params={"conversationId": "c1"},
                                   headers=bearer(make_account().token))
        assert listing.status_code in (503, 504)
        assert listing.json()["code"] in ("UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT")
        assert (await client.get("/readyz")).status_code == 200  # readiness is about the gateway's own deps


async def test_security_headers_cors_and_body_limit_on_the_wire(http: httpx.AsyncClient) -> None:
    response = await http.options("/auth/login", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    login = await http.post("/auth/login", json={"email": "x@hotel.example", "password": "p"})
    assert login.headers["x-frame-options"] == "DENY" and login.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in login.headers["content-security-policy"]
    huge = await http.post("/auth/register", content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                           headers={"Content-Type": "application/json"})
    assert (huge.status_code, huge.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_concurrent_requests_share_the_channels(
    http: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    account = make_account()
    responses = await asyncio.gather(*(
        http.get("/api/tenant/whatsapp", headers=bearer(account.token)) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20

