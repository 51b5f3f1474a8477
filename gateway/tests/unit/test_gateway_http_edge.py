"""The HTTP edge: problem+json shapes, camelCase bodies, validation, status overrides, security headers, CORS and
the body size limit — on the real ASGI app with fake upstream clients."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from eva.auth.v1 import auth_pb2
from eva.conversation.v1 import conversation_pb2
from eva.tenant.v1 import tenant_pb2
from eva_common.errors import AlreadyExists, NotFound, PermissionDenied, Unavailable
from eva_testing.tokens import TestTokenIssuer
from gateway.app import GatewayApp

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _session() -> auth_pb2.AuthSession:
    return auth_pb2.AuthSession(
        access_token="access.jwt", refresh_token="refresh-1", expires_in=900,
        user=auth_pb2.User(id="u1", tenant_id="t1", name="Ana", email="ana@hotel.test", role="admin", active=True,
                           created_at="2026-11-29T10:00:00Z"),
        tenant=tenant_pb2.Tenant(id="t1", name="Hotel Sol", slug="hotel-sol", status="active", plan="trial",
                                 timezone="Europe/Lisbon", locale="pt-PT", created_at="2026-11-29T10:00:00Z"),
    )


@pytest.fixture
def bearer(issuer: TestTokenIssuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.user_token(user_id='u1', tenant_id='t1', role='admin')}"}


async def test_register_maps_camel_case_both_ways(http: httpx.AsyncClient, fake_clients) -> None:
    fake_clients.auth.responses["Register"] = _session()
    response = await http.post("/auth/register", json={
        "tenantName": "Hotel Sol", "name": "Ana", "email": "ana@hotel.test", "password": "long-enough-pw"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken", "expiresIn", "user", "tenant"}
    assert body["user"] == {"id": "u1", "tenantId": "t1", "name": "Ana", "email": "ana@hotel.test", "role": "admin",
                            "active": True, "createdAt": "2026-11-29T10:00:00Z"}
    assert body["tenant"]["slug"] == "hotel-sol" and body["tenant"]["createdAt"] == "2026-11-29T10:00:00Z"
    (_, request), = fake_clients.auth.requests
    assert (request.tenant_name, request.name, request.email) == ("Hotel Sol", "Ana", "ana@hotel.test")
    assert fake_clients.tokens == [None]  # register is public: no token forwarded


async def test_validation_errors_are_400_with_the_fields_at_fault(http: httpx.AsyncClient, fake_clients) -> None:
    response = await http.post("/auth/register", json={"tenantName": "H", "name": "", "email": "not-an-email",
                                                       "password": "short"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_KEYS <= set(body) and body["code"] == "VALIDATION_FAILED" and body["status"] == 400
    assert {error["field"] for error in body["errors"]} == {"tenantName", "name", "email", "password"}
    assert all(isinstance(error["message"], str) and error["message"] for error in body["errors"])
    assert "short" not in response.text  # the rejected input (a password here) is not echoed
    assert fake_clients.auth.requests == []


async def test_malformed_json_is_a_validation_problem(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("conversation not found", code="CONVERSATION_NOT_FOUND"), 404, "CONVERSATION_NOT_FOUND"),
        (PermissionDenied("this call needs a tenant", code="TENANT_REQUIRED"), 409, "TENANT_REQUIRED"),
        (PermissionDenied("your role cannot do this", code="FORBIDDEN_ROLE"), 403, "FORBIDDEN_ROLE"),
        (AlreadyExists("already there"), 409, "ALREADY_EXISTS"),
        (Unavailable("a dependency is unavailable", code="UPSTREAM_UNAVAILABLE"), 503, "UPSTREAM_UNAVAILABLE"),
    ],
)
async def test_upstream_domain_errors_become_problems(
    http: httpx.AsyncClient, fake_clients, bearer: dict[str, str], error: Exception, status: int, code: str
) -> None:
    fake_clients.conversation.responses["GetConversation"] = error
    response = await http.get("/api/conversations/c1", headers=bearer)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert (body["status"], body["code"], body["detail"]) == (status, code, str(error))
    assert body["type"].startswith("https://")


async def test_a_conversation_of_another_tenant_is_not_found(
    http: httpx.AsyncClient, fake_clients, bearer: dict[str, str]
) -> None:
    fake_clients.conversation.responses["GetConversation"] = conversation_pb2.Conversation(
        id="c9", tenant_id="someone-else", contact_id="k1", status="open")
    response = await http.get("/api/conversations/c9", headers=bearer)
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")


async def test_attendants_cannot_store_whatsapp_credentials(
    http: httpx.AsyncClient, fake_clients, issuer: TestTokenIssuer
) -> None:
    token = issuer.user_token(user_id="u2", tenant_id="t1", role="attendant")
    response = await http.put("/api/tenant/whatsapp", headers={"Authorization": f"Bearer {token}"}, json={
        "phoneNumberId": "1065", "wabaId": "1022", "accessToken": "EAAG-secret", "appSecret": "app-secret",
        "verifyToken": "verify-me"})
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN_ROLE")
    assert fake_clients.tenant.requests == []


async def test_security_headers_on_api_responses(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/login", json={})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # dev: no HSTS
    assert response.headers["x-request-id"]


async def test_docs_are_served_without_the_strict_csp(http: httpx.AsyncClient) -> None:
    response = await http.get("/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()
    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_hsts_only_in_production(build_gateway: Callable[..., GatewayApp]) -> None:
    gateway = build_gateway(environment="production")
    transport = httpx.ASGITransport(app=gateway.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_allows_only_the_frontend_origins(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = await http.options("/auth/login", headers={"Origin": "http://localhost:5173", **preflight})
    refused = await http.options("/auth/login", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in refused.headers
    simple = await http.get("/healthz", headers={"Origin": "http://app.example.test"})
    assert simple.headers["access-control-allow-origin"] == "http://app.example.test"


async def test_bodies_over_one_mib_are_refused(http: httpx.AsyncClient, fake_clients) -> None:
    big = b'{"email": "a@b.co", "password": "' + b"x" * (1024 * 1024) + b'"}'
    declared = await http.post("/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert declared.headers["x-request-id"]  # answered inside the shared request middleware

    async def chunks():  # no Content-Length: the limit applies while streaming
        for _ in range(20):
            yield b"x" * 65536

    streamed = await http.post("/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert (streamed.status_code, streamed.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert fake_clients.auth.requests == []


async def test_health_reports_each_dependency(http: httpx.AsyncClient, fake_clients) -> None:
    ok = await http.get("/health")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "dependencies": {
        "redis": "ok", "auth": "ok", "tenant": "ok", "conversation": "ok", "messaging": "ok",
        "n8n-integration": "ok"}}
    fake_clients.down.add("messaging")
    down = await http.get("/health")
    assert down.status_code == 503
    assert down.json()["dependencies"]["messaging"] == "down"
    assert down.json()["dependencies"]["auth"] == "ok"
