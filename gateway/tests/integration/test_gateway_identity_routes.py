"""Identity and tenancy routes through the real gateway (uvicorn) to real gRPC servers running fake auth and tenant
services: users, tenants (super admins), the caller's tenant, API keys, usage and audit logs — shapes, status codes,
role checks at the edge, and the client metadata forwarded with every call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_common.timefmt import rfc3339

pytestmark = pytest.mark.integration

USER_KEYS = {"id", "tenantId", "name", "email", "role", "active", "createdAt"}
TENANT_KEYS = {"id", "name", "slug", "status", "plan", "timezone", "locale", "createdAt"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert PROBLEM_KEYS <= set(response.json())
    return response.status_code, response.json()["code"]


def calls(upstreams: Any, method: str) -> int:
    return len(upstreams.directory.metadata_of(method))


async def test_users_list_create_read_change_delete(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    stranger = make_account(role="admin")

    first = await http.get("/api/users", params={"limit": 1}, headers=bearer(admin.token))
    assert first.status_code == 200
    assert set(first.json()) == {"items", "nextCursor"}
    assert len(first.json()["items"]) == 1 and set(first.json()["items"][0]) == USER_KEYS
    second = await http.get("/api/users", params={"limit": 1, "cursor": first.json()["nextCursor"]},
                            headers=bearer(admin.token))
    listed = {first.json()["items"][0]["id"], second.json()["items"][0]["id"]}
    assert listed == {admin.user_id, attendant.user_id} and second.json()["nextCursor"] is None
    only_attendants = await http.get("/api/users", params={"role": "attendant", "includeInactive": "true"},
                                     headers=bearer(attendant.token))  # attendants may list
    assert [user["id"] for user in only_attendants.json()["items"]] == [attendant.user_id]

    created = await http.post("/api/users", headers=bearer(admin.token), json={
        "name": "Night Desk", "email": "night.desk@hotel.example", "password": "a-long-password", "role": "attendant"})
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == USER_KEYS and "password" not in created.text
    assert (user["tenantId"], user["role"], user["active"], user["name"]) == (
        admin.tenant_id, "attendant", True, "Night Desk")

    fetched = await http.get(f"/api/users/{user['id']}", headers=bearer(attendant.token))
    assert fetched.status_code == 200 and fetched.json() == user
    assert problem(await http.get(f"/api/users/{user['id']}", headers=bearer(stranger.token))) == (
        404, "USER_NOT_FOUND")

    changed = await http.patch(f"/api/users/{user['id']}", headers=bearer(admin.token),
                               json={"role": "admin", "active": False})
    assert changed.status_code == 200
    assert (changed.json()["role"], changed.json()["active"]) == ("admin", False)
    assert problem(await http.patch(f"/api/users/{user['id']}", headers=bearer(admin.token), json={})) == (
        400, "VALIDATION_FAILED")
    assert problem(await http.patch(f"/api/users/{user['id']}", headers=bearer(admin.token),
                                    json={"name": None})) == (400, "VALIDATION_FAILED")

    deleted = await http.delete(f"/api/users/{user['id']}", headers=bearer(admin.token))
    assert deleted.status_code == 204 and deleted.content == b""
    assert problem(await http.get(f"/api/users/{user['id']}", headers=bearer(admin.token))) == (
        404, "USER_NOT_FOUND")


async def test_user_management_is_for_admins_and_roles_never_go_up(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    body = {"name": "X", "email": "x.y@hotel.example", "password": "a-long-password", "role": "attendant"}
    before = (calls(upstreams, "CreateUser"), calls(upstreams, "UpdateUser"), calls(upstreams, "DeleteUser"))
    assert problem(await http.post("/api/users", headers=bearer(attendant.token), json=body)) == (
        403, "FORBIDDEN_ROLE")
    assert problem(await http.patch(f"/api/users/{admin.user_id}", headers=bearer(attendant.token),
                                    json={"role": "attendant"})) == (403, "FORBIDDEN_ROLE")
    assert problem(await http.delete(f"/api/users/{admin.user_id}", headers=bearer(attendant.token))) == (
        403, "FORBIDDEN_ROLE")
    assert problem(await http.get("/api/users", params={"tenantId": "t-other"}, headers=bearer(admin.token))) == (
        403, "FORBIDDEN_ROLE")  # naming another tenant is for super admins
    assert (calls(upstreams, "CreateUser"), calls(upstreams, "UpdateUser"), calls(upstreams, "DeleteUser")) == before

    # the upstream's own refusals keep their codes
    assert problem(await http.post("/api/users", headers=bearer(admin.token),
                                   json={**body, "role": "super_admin"})) == (403, "ROLE_TOO_HIGH")
    assert problem(await http.delete(f"/api/users/{admin.user_id}", headers=bearer(admin.token))) == (
        422, "LAST_ADMIN")
    invalid = await http.post("/api/users", headers=bearer(admin.token),
                              json={"name": "", "email": "nope", "password": "short", "role": "owner"})
    assert problem(invalid) == (400, "VALIDATION_FAILED")
    assert {error["field"] for error in invalid.json()["errors"]} == {"name", "email", "password", "role"}


async def test_super_admins_list_create_suspend_and_reactivate_tenants(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    platform = make_account(role="super_admin")
    created = await http.post("/api/tenants", headers=bearer(platform.token), json={
        "name": "Hotel Mar Azul", "plan": "pro", "timezone": "Atlantic/Azores", "locale": "pt-PT"})
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert set(tenant) == TENANT_KEYS
    assert (tenant["name"], tenant["plan"], tenant["timezone"], tenant["locale"], tenant["status"]) == (
        "Hotel Mar Azul", "pro", "Atlantic/Azores", "pt-PT", "active")

    listing = await http.get("/api/tenants", params={"q": "Mar Azul"}, headers=bearer(platform.token))
    assert listing.status_code == 200 and set(listing.json()) == {"items", "nextCursor"}
    assert [item["id"] for item in listing.json()["items"]] == [tenant["id"]]

    suspended = await http.post(f"/api/tenants/{tenant['id']}/suspend", headers=bearer(platform.token))
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    only_suspended = await http.get("/api/tenants", params={"status": "suspended", "q": "Mar Azul"},
                                    headers=bearer(platform.token))
    assert [item["id"] for item in only_suspended.json()["items"]] == [tenant["id"]]
    reactivated = await http.post(f"/api/tenants/{tenant['id']}/reactivate", headers=bearer(platform.token))
    assert reactivated.status_code == 200 and reactivated.json()["status"] == "active"

    assert problem(await http.post("/api/tenants/t-nowhere/suspend", headers=bearer(platform.token))) == (
        404, "TENANT_NOT_FOUND")
    assert problem(await http.get("/api/tenants", params={"status": "deleted"}, headers=bearer(platform.token))) == (
        400, "VALIDATION_FAILED")
    bad_zone = await http.post("/api/tenants", headers=bearer(platform.token),
                               json={"name": "Hotel", "timezone": "Mars/Olympus_Mons"})
    assert problem(bad_zone) == (400, "VALIDATION_FAILED")
    assert [error["field"] for error in bad_zone.json()["errors"]] == ["timezone"]

    admin = make_account(role="admin")
    before = calls(upstreams, "SetTenantStatus") + calls(upstreams, "ListTenants")
    for response in (await http.get("/api/tenants", headers=bearer(admin.token)),
                     await http.post("/api/tenants", headers=bearer(admin.token), json={"name": "Mine"}),
                     await http.post(f"/api/tenants/{admin.tenant_id}/suspend", headers=bearer(admin.token)),
                     await http.post(f"/api/tenants/{tenant['id']}/reactivate", headers=bearer(admin.token))):
        assert problem(response) == (403, "FORBIDDEN_ROLE")
    assert calls(upstreams, "SetTenantStatus") + calls(upstreams, "ListTenants") == before


async def test_the_callers_own_tenant(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    mine = await http.get("/api/tenant", headers=bearer(attendant.token))
    assert mine.status_code == 200 and set(mine.json()) == TENANT_KEYS | {"readReceipts"}
    assert mine.json()["id"] == admin.tenant_id

    changed = await http.patch("/api/tenant", headers=bearer(admin.token),
                               json={"name": "Hotel Renamed", "timezone": "Europe/Madrid", "locale": "es-ES"})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["timezone"], changed.json()["locale"]) == (
        "Hotel Renamed", "Europe/Madrid", "es-ES")
    assert (await http.get("/api/tenant", headers=bearer(admin.token))).json()["name"] == "Hotel Renamed"

    assert problem(await http.patch("/api/tenant", headers=bearer(attendant.token), json={"name": "Mine"})) == (
        403, "FORBIDDEN_ROLE")
    assert problem(await http.patch("/api/tenant", headers=bearer(admin.token), json={"locale": "not a locale"})) == (
        400, "VALIDATION_FAILED")
    assert problem(await http.patch("/api/tenant", headers=bearer(admin.token), json={"plan": "free"})) == (
        400, "VALIDATION_FAILED")  # nothing the endpoint can change


async def test_api_keys_are_shown_once_listed_without_the_key_and_revoked(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await http.post("/api/tenant/api-keys", headers=bearer(admin.token), json={
        "name": "n8n production", "scopes": ["messages:read", "usage:read", "messages:read"],
        "expiresAt": expires.isoformat()})
    assert created.status_code == 201, created.text
    key = created.json()
    assert set(key) == {"id", "name", "prefix", "scopes", "createdAt", "expiresAt", "key"}
    assert key["key"].startswith(key["prefix"] + "_") and key["scopes"] == ["messages:read", "usage:read"]
    assert key["expiresAt"] == rfc3339(expires)

    listing = await http.get("/api/tenant/api-keys", headers=bearer(admin.token))
    assert listing.status_code == 200 and set(listing.json()) == {"items"}
    (item,) = listing.json()["items"]
    assert set(item) == {"id", "name", "prefix", "scopes", "createdAt", "expiresAt", "lastUsedAt", "revokedAt"}
    assert item["id"] == key["id"] and item["revokedAt"] is None
    assert key["key"] not in listing.text

    revoked = await http.delete(f"/api/tenant/api-keys/{key['id']}", headers=bearer(admin.token))
    assert revoked.status_code == 204 and revoked.content == b""
    assert (await http.get("/api/tenant/api-keys", headers=bearer(admin.token))).json() == {"items": []}
    with_revoked = await http.get("/api/tenant/api-keys", params={"includeRevoked": "true"},
                                  headers=bearer(admin.token))
    assert with_revoked.json()["items"][0]["revokedAt"]
    assert problem(await http.delete("/api/tenant/api-keys/k-unknown", headers=bearer(admin.token))) == (
        404, "API_KEY_NOT_FOUND")

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in ({"name": "x", "scopes": ["everything"]}, {"name": "x", "scopes": []},
                 {"name": "x", "scopes": ["usage:read"], "expiresAt": past},
                 {"name": "x", "scopes": ["usage:read"], "expiresAt": "2030-01-01T00:00:00"}):  # no offset
        assert problem(await http.post("/api/tenant/api-keys", headers=bearer(admin.token), json=body)) == (
            400, "VALIDATION_FAILED"), body
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    assert problem(await http.get("/api/tenant/api-keys", headers=bearer(attendant.token))) == (403, "FORBIDDEN_ROLE")


async def test_usage_and_plan_limits(http: httpx.AsyncClient, make_account: Callable[..., Any]) -> None:
    account = make_account(role="attendant")
    usage = await http.get("/api/usage", params={"from": "2026-11-01", "to": "2026-11-30"},
                           headers=bearer(account.token))
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert set(body) == {"days", "totalsByCategory", "limits"}
    assert body["days"][0] == {"date": "2026-11-01", "category": "service", "direction": "inbound", "count": 12}
    assert body["totalsByCategory"] == {"service": 12, "marketing": 3}
    assert body["limits"] == {"plan": "trial", "monthlyMessageQuota": 1000, "seats": 5, "messagesUsedThisMonth": 15,
                              "quotaExceeded": False, "periodStart": "2026-11-01", "periodEnd": "2026-11-30"}

    assert problem(await http.get("/api/usage", params={"from": "2026-11-30", "to": "2026-11-01"},
                                  headers=bearer(account.token))) == (400, "VALIDATION_FAILED")
    assert problem(await http.get("/api/usage", params={"from": "yesterday"}, headers=bearer(account.token))) == (
        400, "VALIDATION_FAILED")


async def test_audit_logs_filter_and_shape(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    upstreams.directory.audit_logs[admin.tenant_id] = [
        tenant_pb2.AuditLog(id="a1", tenant_id=admin.tenant_id, actor_type="user", actor_id=admin.user_id,
                            action="user.created", target_type="user", target_id="u-9", outcome="success",
                            ip="203.0.113.5", user_agent="Mozilla/5.0", request_id="r-1",
                            details_json='{"role": "attendant"}', occurred_at="2026-11-29T10:00:00Z"),
        tenant_pb2.AuditLog(id="a2", tenant_id=admin.tenant_id, actor_type="anonymous", action="auth.login_failed",
                            outcome="failure", occurred_at="2026-11-29T10:01:00Z"),
    ]
    response = await http.get("/api/audit-logs", headers=bearer(admin.token), params={
        "action": "user.created", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00+01:00", "limit": 10})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "nextCursor"}
    assert response.json()["items"] == [{
        "id": "a1", "actorType": "user", "actorId": admin.user_id, "action": "user.created", "targetType": "user",
        "targetId": "u-9", "outcome": "success", "ip": "203.0.113.5", "userAgent": "Mozilla/5.0",
        "requestId": "r-1", "details": {"role": "attendant"}, "occurredAt": "2026-11-29T10:00:00Z"}]
    everything = await http.get("/api/audit-logs", headers=bearer(admin.token))
    failed = everything.json()["items"][1]
    assert (failed["actorId"], failed["targetType"], failed["details"], failed["outcome"]) == (
        None, None, {}, "failure")

    assert problem(await http.get("/api/audit-logs", headers=bearer(admin.token),
                                  params={"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"})) == (
        400, "VALIDATION_FAILED")
    assert problem(await http.get("/api/audit-logs", headers=bearer(admin.token),
                                  params={"from": "2026-11-01T00:00:00"})) == (400, "VALIDATION_FAILED")
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    assert problem(await http.get("/api/audit-logs", headers=bearer(attendant.token))) == (403, "FORBIDDEN_ROLE")


async def test_every_call_forwards_the_client_address_and_user_agent(
    http: httpx.AsyncClient, gateway_factory: Callable[..., Any], make_account: Callable[..., Any],
    upstreams: Any
) -> None:
    account = make_account()
    directory = upstreams.directory
    spoofed = {"X-Forwarded-For": "203.0.113.9", "User-Agent": "EvaTest/1.0 (r\u00e9ception)".encode()}
    assert (await http.get("/api/tenant", headers={**bearer(account.token), **spoofed})).status_code == 200
    forwarded = directory.metadata_of("GetTenant")[-1]
    # no trusted proxy: the socket peer, not the header; the user agent as printable ASCII only
    assert forwarded["x-client-ip"] == "127.0.0.1"
    assert forwarded["x-user-agent"] == "EvaTest/1.0 (rception)"
    assert forwarded["authorization"] == f"Bearer {account.token}" and forwarded["x-request-id"]

    await http.post("/auth/login", json={"email": "nobody@hotel.example", "password": "whatever"},
                    headers={"User-Agent": "LoginClient/2"})
    login = directory.metadata_of("Login")[-1]
    assert (login["x-client-ip"], login["x-user-agent"]) == ("127.0.0.1", "LoginClient/2")
    assert "authorization" not in login

    behind_proxy = await gateway_factory(trusted_proxies="127.0.0.1, 10.0.0.0/8")
    async with httpx.AsyncClient(base_url=behind_proxy.url, timeout=10) as client:
        chained = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 10.1.2.3"}
        assert (await client.get("/api/tenant", headers={**bearer(account.token), **chained})).status_code == 200
        assert directory.metadata_of("GetTenant")[-1]["x-client-ip"] == "203.0.113.9"  # first untrusted from the right
        assert (await client.get("/api/tenant", headers=bearer(account.token))).status_code == 200
        assert directory.metadata_of("GetTenant")[-1]["x-client-ip"] == "127.0.0.1"


async def test_socket_calls_forward_the_sockets_client(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], upstreams: Any,
    seed_conversation: Callable[..., None]
) -> None:
    account = make_account()
    seed_conversation(account, "conv-socket-metadata")
    probe = sockets()
    await probe.connect(gateway.url, token=account.token, headers={"User-Agent": "EvaSocket/3"})
    assert await probe.call("join:conversation", {"conversationId": "conv-socket-metadata"}) == {"ok": True}
    forwarded = upstreams.directory.metadata_of("GetConversation")[-1]
    assert (forwarded["x-client-ip"], forwarded["x-user-agent"]) == ("127.0.0.1", "EvaSocket/3")
