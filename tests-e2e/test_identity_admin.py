"""Running a hotel's team through the gateway: roles and the last-admin rule, seats, login throttling, the API key
lifecycle, the platform super admin suspending and reactivating a hotel (inbound messages are kept meanwhile), the
audit log (filters, cursor pages) and usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_support import (
    Hotel,
    StackUrls,
    bearer,
    create_api_key,
    create_user,
    eventually,
    guest_conversation,
    guest_writes,
    login,
    new_wa_id,
    problem_code,
    register_hotel,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def assert_problem(response: httpx.Response, statuses: int | set[int], code: str) -> None:
    allowed = {statuses} if isinstance(statuses, int) else statuses
    assert response.status_code in allowed, (response.status_code, response.text)
    assert problem_code(response) == code, response.text


async def users_api(http: httpx.AsyncClient, stack: StackUrls, method: str, token: str, user_id: str = "",
                    body: dict[str, Any] | None = None) -> httpx.Response:
    path = f"{stack.gateway}/api/users" + (f"/{user_id}" if user_id else "")
    return await http.request(method, path, headers=bearer(token), json=body)


def new_user(role: str = "attendant") -> dict[str, Any]:
    return {"name": "Someone", "email": f"{role}-{uuid.uuid4().hex[:8]}@hotel.test",
            "password": "a long enough password 42", "role": role}


# -- roles -----------------------------------------------------------------------------------------------------


async def test_attendants_cannot_manage_users_and_nobody_grants_a_higher_role(
    stack: StackUrls, http: httpx.AsyncClient
) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    attendant = await create_user(http, stack, hotel.access_token)

    assert_problem(await users_api(http, stack, "POST", attendant.access_token, body=new_user()), 403,
                   "FORBIDDEN_ROLE")
    for body in ({"role": "admin"}, {"name": "Self-promoted"}):
        response = await users_api(http, stack, "PATCH", attendant.access_token, str(hotel.user["id"]), body)
        assert response.status_code == 403, response.text
    response = await users_api(http, stack, "PATCH", attendant.access_token, attendant.id, {"role": "admin"})
    assert response.status_code == 403, response.text
    assert_problem(await users_api(http, stack, "DELETE", attendant.access_token, str(hotel.user["id"])), 403,
                   "FORBIDDEN_ROLE")
    listed = await users_api(http, stack, "GET", attendant.access_token)  # attendants may read the team
    assert listed.status_code == 200 and attendant.id in {u["id"] for u in listed.json()["items"]}

    assert_problem(await users_api(http, stack, "POST", hotel.access_token, body=new_user("super_admin")),
                   {400, 403, 422}, "ROLE_NOT_ALLOWED")
    assert_problem(await users_api(http, stack, "PATCH", hotel.access_token, attendant.id, {"role": "super_admin"}),
                   {400, 403, 422}, "ROLE_NOT_ALLOWED")
    me = await http.get(f"{stack.gateway}/auth/me", headers=attendant.auth)
    assert me.json()["user"]["role"] == "attendant"


async def test_the_last_admin_cannot_be_removed_deactivated_or_demoted(
    stack: StackUrls, http: httpx.AsyncClient
) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    admin_id = str(hotel.user["id"])
    for method, body in (("DELETE", None), ("PATCH", {"role": "attendant"}), ("PATCH", {"active": False})):
        assert_problem(await users_api(http, stack, method, hotel.access_token, admin_id, body), {409, 422},
                       "LAST_ADMIN")
    assert (await http.get(f"{stack.gateway}/auth/me", headers=hotel.auth)).json()["user"]["role"] == "admin"

    # with a second admin, the first may step down; then the second is the last one
    second = await create_user(http, stack, hotel.access_token, role="admin")
    response = await users_api(http, stack, "PATCH", hotel.access_token, admin_id, {"role": "attendant"})
    assert response.status_code == 200 and response.json()["role"] == "attendant", response.text
    assert_problem(await users_api(http, stack, "DELETE", second.access_token, second.id), {409, 422}, "LAST_ADMIN")
    assert_problem(await users_api(http, stack, "PATCH", second.access_token, second.id, {"active": False}),
                   {409, 422}, "LAST_ADMIN")


# -- seats -----------------------------------------------------------------------------------------------------


async def test_seats_limit_the_active_users(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    usage = await http.get(f"{stack.gateway}/api/usage", headers=hotel.auth)
    assert usage.status_code == 200, usage.text
    seats = int(usage.json()["limits"]["seats"])
    assert 1 <= seats <= 25, seats  # a new hotel is on a small plan

    created = [await users_api(http, stack, "POST", hotel.access_token, body=new_user()) for _ in range(seats - 1)]
    assert [r.status_code for r in created] == [201] * (seats - 1), [r.text for r in created]
    full = await users_api(http, stack, "POST", hotel.access_token, body=new_user())
    assert_problem(full, {402, 403, 409, 422, 429}, "SEAT_LIMIT_REACHED")

    # a deactivated user frees its seat; reactivating it while the seats are taken is refused
    parked = created[0].json()["id"]
    response = await users_api(http, stack, "PATCH", hotel.access_token, parked, {"active": False})
    assert response.status_code == 200, response.text
    assert (await users_api(http, stack, "POST", hotel.access_token, body=new_user())).status_code == 201
    assert_problem(await users_api(http, stack, "PATCH", hotel.access_token, parked, {"active": True}),
                   {402, 403, 409, 422, 429}, "SEAT_LIMIT_REACHED")
    # a deleted one frees its seat too
    response = await users_api(http, stack, "DELETE", hotel.access_token, created[1].json()["id"])
    assert response.status_code == 204, response.text
    assert (await users_api(http, stack, "POST", hotel.access_token, body=new_user())).status_code == 201


# -- login throttling --------------------------------------------------------------------------------------------


async def test_login_is_throttled_per_account_with_retry_after(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    bystander = await register_hotel(http, stack, configure_whatsapp=False)
    statuses: list[int] = []
    response: httpx.Response | None = None
    for _ in range(15):
        response = await http.post(f"{stack.gateway}/auth/login",
                                   json={"email": hotel.email, "password": "wrong password " + uuid.uuid4().hex})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert response is not None and response.status_code == 429, statuses
    assert set(statuses[:-1]) == {401}, statuses  # wrong passwords first, then the throttle
    assert problem_code(response) in {"LOGIN_THROTTLED", "RATE_LIMITED"}, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600, retry_after

    # the right password does not get through while the account is throttled ...
    right = await http.post(f"{stack.gateway}/auth/login", json={"email": hotel.email, "password": hotel.password})
    assert right.status_code == 429 and "Retry-After" in right.headers, right.text
    # ... and other accounts are not affected
    other = await login(http, stack, bystander.email, bystander.password)
    assert other.status_code == 200, other.text


# -- API keys -----------------------------------------------------------------------------------------------------


async def test_api_key_lifecycle(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack)
    conversation_id, wamid = await guest_conversation(http, stack, hotel, "Is breakfast included?")
    created = await create_api_key(http, stack, hotel.access_token, scopes=("messages:read",), name="n8n reader")
    key = str(created["key"])
    messages = "/api/messages"
    params = {"conversationId": conversation_id}

    for url in (stack.gateway, stack.gateway_replica):  # both replicas exchange (and cache) the key
        for headers in ({"X-Api-Key": key}, {"Authorization": f"ApiKey {key}"}):
            response = await http.get(f"{url}{messages}", params=params, headers=headers)
            assert response.status_code == 200, response.text
            assert [m["wamid"] for m in response.json()["items"]] == [wamid]
    assert_problem(await http.get(f"{stack.gateway}/api/users", headers={"X-Api-Key": key}), 403,
                   "API_KEY_NOT_ALLOWED")
    assert_problem(await http.get(f"{stack.gateway}/api/usage", headers={"X-Api-Key": key}), 403, "SCOPE_MISSING")

    listed = await http.get(f"{stack.gateway}/api/tenant/api-keys", headers=hotel.auth)
    assert listed.status_code == 200 and key not in listed.text  # shown once, never again
    [entry] = [item for item in listed.json()["items"] if item["id"] == created["id"]]
    assert entry["name"] == "n8n reader" and entry["scopes"] == ["messages:read"]
    assert entry["prefix"] and (key.startswith(entry["prefix"]) or key.startswith(f"eva_{entry['prefix']}_"))

    revoked = await http.delete(f"{stack.gateway}/api/tenant/api-keys/{created['id']}", headers=hotel.auth)
    assert revoked.status_code == 204, revoked.text
    for url in (stack.gateway, stack.gateway_replica):  # refused at once, cached exchange or not
        response = await http.get(f"{url}{messages}", params=params, headers={"X-Api-Key": key})
        assert response.status_code == 401, (url, response.text)
    for bogus in ("eva_abcdefgh_" + "x" * 43, "not-a-key"):
        response = await http.get(f"{stack.gateway}{messages}", params=params, headers={"X-Api-Key": bogus})
        assert response.status_code == 401, response.text


# -- super admin --------------------------------------------------------------------------------------------------


async def super_admin_token(http: httpx.AsyncClient, stack: StackUrls) -> str:
    assert stack.super_admin_password, "no super_admin_password in .local/test/secrets.json"
    response = await login(http, stack, stack.super_admin_email, stack.super_admin_password, tenant_slug="platform")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["role"] == "super_admin"
    return str(response.json()["accessToken"])


async def messages_of(http: httpx.AsyncClient, stack: StackUrls, hotel_token: str, conversation_id: str) -> set[str]:
    response = await http.get(f"{stack.gateway}/api/messages", params={"conversationId": conversation_id},
                              headers=bearer(hotel_token))
    assert response.status_code == 200, response.text
    return {m["wamid"] for m in response.json()["items"]}


async def test_super_admin_suspends_a_hotel_whose_inbound_messages_are_still_kept(
    stack: StackUrls, http: httpx.AsyncClient
) -> None:
    hotel = await register_hotel(http, stack)
    guest = new_wa_id()
    conversation_id, first = await guest_conversation(http, stack, hotel, "Arriving at 22h", guest)
    token = await super_admin_token(http, stack)

    listed = await http.get(f"{stack.gateway}/api/tenants", params={"q": hotel.tenant["name"]}, headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["items"]] == [hotel.tenant["id"]]
    assert listed.json()["items"][0]["status"] == "active"

    suspended = await http.post(f"{stack.gateway}/api/tenants/{hotel.tenant['id']}/suspend", headers=bearer(token))
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
    by_status = await http.get(f"{stack.gateway}/api/tenants", params={"status": "suspended", "limit": "100"},
                               headers=bearer(token))
    assert hotel.tenant["id"] in {t["id"] for t in by_status.json()["items"]}

    assert_problem(await login(http, stack, hotel.email, hotel.password), 403, "TENANT_SUSPENDED")
    sent = await guest_writes(http, stack, hotel.phone_number_id, "Are you there?", wa_id=guest)
    assert [a["status"] for a in sent["attempts"]] == [200]  # ingest still takes the hotel's webhooks

    reactivated = await http.post(f"{stack.gateway}/api/tenants/{hotel.tenant['id']}/reactivate",
                                  headers=bearer(token))
    assert reactivated.status_code == 200 and reactivated.json()["status"] == "active", reactivated.text
    again = await login(http, stack, hotel.email, hotel.password)
    assert again.status_code == 200, again.text
    fresh = str(again.json()["accessToken"])

    async def both_kept() -> bool:
        return await messages_of(http, stack, fresh, conversation_id) == {first, str(sent["wamid"])}

    await eventually(both_kept)


async def test_only_super_admins_administer_tenants(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    for method, path in (("GET", "/api/tenants"), ("POST", f"/api/tenants/{hotel.tenant['id']}/suspend")):
        assert_problem(await http.request(method, f"{stack.gateway}{path}", headers=hotel.auth), 403,
                       "FORBIDDEN_ROLE")


# -- audit log ------------------------------------------------------------------------------------------------------


async def audit(http: httpx.AsyncClient, stack: StackUrls, hotel: Hotel, **params: str) -> dict[str, Any]:
    response = await http.get(f"{stack.gateway}/api/audit-logs", params=params, headers=hotel.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_audit_log_records_logins_failures_and_user_creation(stack: StackUrls, http: httpx.AsyncClient) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    member = await create_user(http, stack, hotel.access_token)  # user.created, then the member's auth.login
    wrong_password = "wrong password " + uuid.uuid4().hex
    failed = await http.post(f"{stack.gateway}/auth/login", json={"email": member.email, "password": wrong_password})
    assert failed.status_code == 401

    async def recorded() -> dict[str, Any] | None:
        created = await audit(http, stack, hotel, action="user.created")
        logins = await audit(http, stack, hotel, action="auth.login", actorId=member.id)
        failures = await audit(http, stack, hotel, action="auth.login_failed")
        if created["items"] and logins["items"] and failures["items"]:
            return {"created": created, "logins": logins, "failures": failures}
        return None

    found = await eventually(recorded, timeout=30)
    assert {item["action"] for item in found["created"]["items"]} == {"user.created"}
    assert member.id in {item["targetId"] for item in found["created"]["items"]}
    assert {(item["action"], item["actorId"]) for item in found["logins"]["items"]} == {("auth.login", member.id)}
    assert all(item["outcome"] == "success" for item in found["logins"]["items"])
    failure = found["failures"]["items"][0]
    assert failure["outcome"] == "failure" and failure["action"] == "auth.login_failed"

    everything = await audit(http, stack, hotel, limit="100")
    assert wrong_password not in str(everything) and member.password not in str(everything)
    items = everything["items"]
    assert len(items) >= 4, items  # registered, the admin's session, user.created, the member's login, the failure
    stamps = [item["occurredAt"] for item in items]
    assert stamps == sorted(stamps, reverse=True)  # newest first

    pages: list[str] = []
    cursor = ""
    for _ in range(len(items) + 2):
        page = await audit(http, stack, hotel, limit="2", **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        pages.extend(item["id"] for item in page["items"])
        cursor = page.get("nextCursor") or ""
        if not cursor:
            break
    assert pages == [item["id"] for item in items]  # the same entries, once each, in the same order

    assert (await audit(http, stack, hotel, targetId=member.id, action="user.created"))["items"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await audit(http, stack, hotel, **{"from": later}))["items"] == []
    assert (await audit(http, stack, hotel, to=started.isoformat()))["items"] == []
    assert len((await audit(http, stack, hotel, **{"from": started.isoformat()}))["items"]) == len(items)

    refused = await http.get(f"{stack.gateway}/api/audit-logs", headers=member.auth)
    assert refused.status_code == 403, refused.text


# -- usage ----------------------------------------------------------------------------------------------------------


async def test_usage_counts_the_inbound_messages(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack)
    guest = new_wa_id()
    await guest_conversation(http, stack, hotel, "First question", guest)
    second = await guest_writes(http, stack, hotel.phone_number_id, "Second question", wa_id=guest)
    assert [a["status"] for a in second["attempts"]] == [200]

    async def counted() -> dict[str, Any] | None:
        response = await http.get(f"{stack.gateway}/api/usage", headers=hotel.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        inbound = sum(day["count"] for day in body["days"] if day["direction"] == "inbound")
        return body if inbound == 2 else None

    usage = await eventually(counted, timeout=30)
    today = datetime.now(UTC).date()
    assert {(day["category"], day["direction"]) for day in usage["days"]} == {("service", "inbound")}
    assert {day["date"] for day in usage["days"]} <= {str(today), str(today - timedelta(days=1)),
                                                      str(today + timedelta(days=1))}  # the hotel's timezone
    assert usage["totalsByCategory"].get("service") == 2
    assert usage["limits"]["plan"] and usage["limits"]["monthlyMessageQuota"] > 0

    reader = await create_api_key(http, stack, hotel.access_token, scopes=("usage:read",))
    by_key = await http.get(f"{stack.gateway}/api/usage", headers={"X-Api-Key": reader["key"]})
    assert by_key.status_code == 200 and by_key.json()["totalsByCategory"] == usage["totalsByCategory"]
