"""Identity and tenancy routes on the real ASGI app with fake upstream clients: what each route asks its upstream
(the proto request), what it answers, and the checks made at the edge before any upstream call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2
from eva_testing.tokens import TestTokenIssuer


def _as(issuer: TestTokenIssuer, role: str, tenant_id: str = "t1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.user_token(user_id=f'u-{role}', tenant_id=tenant_id, role=role)}"}


def _user(user_id: str = "u9", tenant_id: str = "t1", **fields: Any) -> auth_pb2.User:
    values: dict[str, Any] = {"name": "Ana", "email": "ana@hotel.test", "role": "attendant", "active": True,
                              "created_at": "2026-11-29T10:00:00Z", **fields}
    return auth_pb2.User(id=user_id, tenant_id=tenant_id, **values)


def _tenant(tenant_id: str = "t1", **fields: Any) -> tenant_pb2.Tenant:
    values: dict[str, Any] = {"name": "Hotel", "slug": "hotel", "status": "active", "plan": "trial", **fields}
    return tenant_pb2.Tenant(id=tenant_id, **values)


def _only_request(service: Any) -> Any:
    (_, request), = service.requests
    return request


async def test_user_listing_passes_its_filters(http: httpx.AsyncClient, fake_clients: Any,
                                               issuer: TestTokenIssuer) -> None:
    fake_clients.auth.responses["ListUsers"] = auth_pb2.ListUsersResponse(items=[_user()], next_cursor="c2")
    response = await http.get("/api/users", headers=_as(issuer, "attendant"), params={
        "limit": 5, "cursor": "c1", "role": "admin", "q": "ana", "includeInactive": "true"})
    assert response.status_code == 200
    assert response.json()["nextCursor"] == "c2" and response.json()["items"][0]["email"] == "ana@hotel.test"
    request = _only_request(fake_clients.auth)
    assert (request.limit, request.cursor, request.role, request.q, request.include_inactive, request.tenant_id) == (
        5, "c1", "admin", "ana", True, "")


async def test_super_admins_may_name_a_tenant(http: httpx.AsyncClient, fake_clients: Any,
                                              issuer: TestTokenIssuer) -> None:
    fake_clients.auth.responses["ListUsers"] = auth_pb2.ListUsersResponse()
    fake_clients.auth.responses["CreateUser"] = _user(tenant_id="t7")
    assert (await http.get("/api/users", headers=_as(issuer, "super_admin", "platform"),
                           params={"tenantId": "t7"})).status_code == 200
    created = await http.post("/api/users", headers=_as(issuer, "super_admin", "platform"), json={
        "name": "Ana", "email": "ana@hotel.test", "password": "a-long-password", "role": "admin", "tenantId": "t7"})
    assert created.status_code == 201 and created.json()["tenantId"] == "t7"
    assert [request.tenant_id for _, request in fake_clients.auth.requests] == ["t7", "t7"]


async def test_a_patch_sends_only_the_fields_given(http: httpx.AsyncClient, fake_clients: Any,
                                                   issuer: TestTokenIssuer) -> None:
    fake_clients.auth.responses["UpdateUser"] = _user(active=False)
    response = await http.patch("/api/users/u9", headers=_as(issuer, "admin"), json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    request = _only_request(fake_clients.auth)
    assert request.user_id == "u9" and request.HasField("active") and request.active is False
    assert not any(request.HasField(name) for name in ("name", "email", "role", "password"))


async def test_a_user_of_another_tenant_is_never_shown(http: httpx.AsyncClient, fake_clients: Any,
                                                       issuer: TestTokenIssuer) -> None:
    fake_clients.auth.responses["GetUser"] = _user(tenant_id="t-other")  # an upstream that forgot to scope
    response = await http.get("/api/users/u9", headers=_as(issuer, "admin"))
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    assert "ana@hotel.test" not in response.text


@pytest.mark.parametrize(("method", "path", "body", "role"), [
    ("POST", "/api/users", {"name": "A", "email": "a@hotel.test", "password": "a-long-password", "role": "attendant"},
     "attendant"),
    ("PATCH", "/api/users/u1", {"name": "B"}, "attendant"),
    ("DELETE", "/api/users/u1", None, "attendant"),
    ("PATCH", "/api/tenant", {"name": "Renamed"}, "attendant"),
    ("POST", "/api/tenant/api-keys", {"name": "k", "scopes": ["usage:read"]}, "attendant"),
    ("GET", "/api/tenant/api-keys", None, "attendant"),
    ("DELETE", "/api/tenant/api-keys/k1", None, "attendant"),
    ("GET", "/api/audit-logs", None, "attendant"),
    ("GET", "/api/tenant/whatsapp", None, "attendant"),
    ("GET", "/api/tenants", None, "admin"),
    ("POST", "/api/tenants", {"name": "New hotel"}, "admin"),
    ("POST", "/api/tenants/t2/suspend", None, "admin"),
    ("POST", "/api/tenants/t2/reactivate", None, "admin"),
])
async def test_roles_are_checked_before_any_upstream_call(
    http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer, method: str, path: str,
    body: dict[str, Any] | None, role: str
) -> None:
    response = await http.request(method, path, json=body, headers=_as(issuer, role))
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN_ROLE")
    assert fake_clients.tokens == []


async def test_tenants_routes_map_to_their_rpcs(http: httpx.AsyncClient, fake_clients: Any,
                                                issuer: TestTokenIssuer) -> None:
    platform = _as(issuer, "super_admin", "platform")
    fake_clients.tenant.responses["ListTenants"] = tenant_pb2.ListTenantsResponse(items=[_tenant("t2")])
    fake_clients.tenant.responses["AdminCreateTenant"] = _tenant("t3", timezone="Europe/Lisbon", locale="pt-PT")
    fake_clients.tenant.responses["SetTenantStatus"] = lambda request: _tenant(request.tenant_id,
                                                                               status=request.status)
    listing = await http.get("/api/tenants", headers=platform, params={"status": "suspended", "q": "sol"})
    assert listing.json() == {"items": [{"id": "t2", "name": "Hotel", "slug": "hotel", "status": "active",
                                         "plan": "trial", "timezone": None, "locale": None, "createdAt": None}],
                              "nextCursor": None}
    created = await http.post("/api/tenants", headers=platform, json={"name": "  Hotel Sol  "})
    assert created.status_code == 201 and created.json()["id"] == "t3"
    suspended = await http.post("/api/tenants/t2/suspend", headers=platform)
    reactivated = await http.post("/api/tenants/t2/reactivate", headers=platform)
    assert (suspended.json()["status"], reactivated.json()["status"]) == ("suspended", "active")
    requests = [request for _, request in fake_clients.tenant.requests]
    assert (requests[0].status, requests[0].q, requests[0].limit) == ("suspended", "sol", 50)
    assert (requests[1].name, requests[1].plan, requests[1].timezone) == ("Hotel Sol", "", "")
    assert [(r.tenant_id, r.status) for r in requests[2:]] == [("t2", "suspended"), ("t2", "active")]


async def test_the_own_tenant_patch_and_defence_in_depth(http: httpx.AsyncClient, fake_clients: Any,
                                                         issuer: TestTokenIssuer) -> None:
    fake_clients.tenant.responses["UpdateTenant"] = _tenant(timezone="Europe/Madrid")
    response = await http.patch("/api/tenant", headers=_as(issuer, "admin"), json={"timezone": "Europe/Madrid"})
    assert response.status_code == 200 and response.json()["timezone"] == "Europe/Madrid"
    request = _only_request(fake_clients.tenant)
    assert request.HasField("timezone") and not request.HasField("name") and not request.HasField("locale")

    fake_clients.tenant.responses["GetTenant"] = _tenant("t-other")
    leaked = await http.get("/api/tenant", headers=_as(issuer, "admin"))
    assert (leaked.status_code, leaked.json()["code"]) == (404, "NOT_FOUND")


async def test_api_key_creation_sends_utc_expiry_and_returns_the_key_once(
    http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    key = tenant_pb2.ApiKey(id="k1", tenant_id="t1", name="n8n", prefix="eva_a1b2c3d4", scopes=["usage:read"],
                            created_at="2026-11-29T10:00:00Z", expires_at="2030-01-01T11:00:00Z")
    fake_clients.tenant.responses["CreateApiKey"] = tenant_pb2.CreatedApiKey(api_key=key, key="eva_a1b2c3d4_s3cret")
    fake_clients.tenant.responses["ListApiKeys"] = tenant_pb2.ListApiKeysResponse(items=[key])
    created = await http.post("/api/tenant/api-keys", headers=_as(issuer, "admin"), json={
        "name": "n8n", "scopes": ["usage:read"], "expiresAt": "2030-01-01T12:00:00+01:00"})
    assert created.status_code == 201
    assert created.json() == {"id": "k1", "name": "n8n", "prefix": "eva_a1b2c3d4", "scopes": ["usage:read"],
                              "createdAt": "2026-11-29T10:00:00Z", "expiresAt": "2030-01-01T11:00:00Z",
                              "key": "eva_a1b2c3d4_s3cret"}
    assert _only_request(fake_clients.tenant).expires_at == "2030-01-01T11:00:00.000Z"
    listing = await http.get("/api/tenant/api-keys", headers=_as(issuer, "admin"))
    assert "key" not in listing.json()["items"][0] and "s3cret" not in listing.text


async def test_usage_and_audit_bounds_are_sent_as_the_services_expect(
    http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer
) -> None:
    fake_clients.tenant.responses["GetUsage"] = tenant_pb2.GetUsageResponse()
    fake_clients.tenant.responses["ListAuditLogs"] = tenant_pb2.ListAuditLogsResponse(next_cursor="n2")
    usage = await http.get("/api/usage", headers=_as(issuer, "attendant"), params={"from": "2026-11-01"})
    assert usage.json() == {"days": [], "totalsByCategory": {}, "limits": {
        "plan": "", "monthlyMessageQuota": 0, "seats": 0, "messagesUsedThisMonth": 0, "quotaExceeded": False,
        "periodStart": None, "periodEnd": None}}
    audit = await http.get("/api/audit-logs", headers=_as(issuer, "admin"), params={
        "actorId": "u1", "action": "user.updated", "targetType": "user", "targetId": "u2",
        "from": "2026-11-01T01:00:00+01:00", "to": "2026-11-02T00:00:00Z", "limit": 20, "cursor": "n1"})
    assert audit.json() == {"items": [], "nextCursor": "n2"}
    usage_request, audit_request = (request for _, request in fake_clients.tenant.requests)
    assert (usage_request.from_date, usage_request.to_date) == ("2026-11-01", "")
    assert (audit_request.actor_id, audit_request.action, audit_request.target_type, audit_request.target_id) == (
        "u1", "user.updated", "user", "u2")
    assert (audit_request.from_time, audit_request.to_time, audit_request.limit, audit_request.cursor) == (
        "2026-11-01T00:00:00.000Z", "2026-11-02T00:00:00.000Z", 20, "n1")
    too_long = await http.get("/api/usage", headers=_as(issuer, "attendant"),
                              params={"from": "2025-01-01", "to": "2026-11-01"})
    assert (too_long.status_code, too_long.json()["code"]) == (400, "VALIDATION_FAILED")
