"""The isolation matrix: every endpoint, called as tenant A's admin, A's attendant, an API key of A and anonymously,
first on A's own ids (it must work where the role allows it), then on tenant B's ids (authenticated callers get 403
or 404, never 401 and never 2xx; anonymous callers get 401). B's data is compared before and after.

Endpoints without an id in the path are probed by naming B's tenant in the query, body and an `X-Tenant-Id` header:
the caller's own tenant comes from its token, so such a call may succeed, but only with A's data (checked per
endpoint). One pytest case per (endpoint, caller); the table is written to `.local/test/isolation-matrix.md` and
shown in the terminal summary.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from e2e_support import (
    MATRIX_REPORT,
    Hotel,
    Member,
    StackUrls,
    create_api_key,
    create_user,
    eventually,
    guest_conversation,
    guest_writes,
    loopback_client,
    new_wa_id,
    problem_code,
    register_hotel,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".local" / "test" / "isolation-matrix.md"

Caller = Literal["admin", "attendant", "api_key", "anonymous"]
CALLERS: tuple[Caller, ...] = ("admin", "attendant", "api_key", "anonymous")
USERS: frozenset[Caller] = frozenset({"admin", "attendant"})
ADMIN: frozenset[Caller] = frozenset({"admin"})
NOBODY: frozenset[Caller] = frozenset()


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class World:
    """Two hotels, each with an admin, an attendant, an API key with every scope, WhatsApp credentials and a guest
    conversation (B's has two messages, A's one, so usage tells them apart)."""

    stack: StackUrls
    a: Hotel
    b: Hotel
    a_attendant: Member
    b_attendant: Member
    a_key: dict[str, Any]
    b_key: dict[str, Any]
    a_conversation: str
    b_conversation: str
    b_before: dict[str, tuple[int, Any]] = field(default_factory=dict)
    leftover_users: list[str] = field(default_factory=list)
    leftover_keys: list[str] = field(default_factory=list)

    def headers(self, caller: Caller) -> dict[str, str]:
        if caller == "admin":
            return self.a.auth
        if caller == "attendant":
            return self.a_attendant.auth
        if caller == "api_key":
            return {"X-Api-Key": str(self.a_key["key"])}
        return {}

    @property
    def b_user_ids(self) -> set[str]:
        return {str(self.b.user["id"]), self.b_attendant.id}

    @property
    def b_tenant(self) -> str:
        return str(self.b.tenant["id"])

    def naming_b(self) -> dict[str, str]:
        return {"X-Tenant-Id": self.b_tenant}

    async def clean_up(self, http: httpx.AsyncClient) -> None:
        """Removes what a row created in A (users hold seats), as A's admin."""
        for user_id in self.leftover_users:
            await http.delete(f"{self.stack.gateway}/api/users/{user_id}", headers=self.a.auth)
        for key_id in self.leftover_keys:
            await http.delete(f"{self.stack.gateway}/api/tenant/api-keys/{key_id}", headers=self.a.auth)
        self.leftover_users.clear()
        self.leftover_keys.clear()


Leak = Callable[[World, Any], str | None]


@dataclass(frozen=True)
class Endpoint:
    name: str
    own: Callable[[World, httpx.AsyncClient, Caller], Awaitable[Call]]
    cross: Callable[[World, Caller], Call]
    allowed: frozenset[Caller]
    accepts_key: bool = False
    # "id": the cross call names one of B's ids (403/404 expected); "scoped": the path has no id, the cross call
    # names B's tenant instead, and an allowed caller may succeed with its own tenant's data (`leak` finds B's).
    cross_kind: Literal["id", "scoped"] = "id"
    leak: Leak | None = None
    also_refused: frozenset[int] = frozenset()  # other refusals accepted on B's ids (with the reason in the name)
    creates: Literal["user", "key"] | None = None  # what a successful call leaves in A (removed after the row)

    def may(self, caller: Caller) -> bool:
        return caller in self.allowed or (caller == "api_key" and self.accepts_key)


def fixed(call: Callable[[World, Caller], Call]) -> Callable[[World, httpx.AsyncClient, Caller], Awaitable[Call]]:
    async def own(world: World, http: httpx.AsyncClient, caller: Caller) -> Call:
        return call(world, caller)

    return own


async def sacrificial_user(world: World, http: httpx.AsyncClient, caller: Caller) -> Call:
    member = await create_user(http, world.stack, world.a.access_token, log_in=False)
    world.leftover_users.append(member.id)
    return Call("DELETE", f"/api/users/{member.id}")


async def sacrificial_key(world: World, http: httpx.AsyncClient, caller: Caller) -> Call:
    key = await create_api_key(http, world.stack, world.a.access_token, scopes=("usage:read",))
    world.leftover_keys.append(str(key["id"]))
    return Call("DELETE", f"/api/tenant/api-keys/{key['id']}")


def new_user_body(world: World) -> dict[str, Any]:
    return {"name": "Matrix User", "email": f"matrix-{uuid.uuid4().hex[:8]}@hotel.test",
            "password": "matrix user password 1", "role": "attendant"}


def whatsapp_body(hotel: Hotel, phone_number_id: str) -> dict[str, Any]:
    return {"phoneNumberId": phone_number_id, "wabaId": "102290129340398", "accessToken": hotel.access_token_wa,
            "appSecret": hotel.app_secret, "verifyToken": hotel.verify_token}


def inbound_total(body: Any) -> int:
    return sum(int(day.get("count", 0)) for day in body.get("days", []) if day.get("direction") == "inbound")


def leak_me(world: World, body: Any) -> str | None:
    if str(body["user"]["id"]) in world.b_user_ids or str(body["tenant"]["id"]) == world.b_tenant:
        return "answered with B's user or tenant"
    return None


def leak_items(key: str, ids: Callable[[World], set[str]]) -> Leak:
    def leak(world: World, body: Any) -> str | None:
        found = {str(item.get(key)) for item in body.get("items", [])} & ids(world)
        return f"listed B's {sorted(found)}" if found else None

    return leak


def leak_users(world: World, body: Any) -> str | None:
    items = body.get("items", [])
    if {str(item["id"]) for item in items} & world.b_user_ids or any(
            item.get("tenantId") == world.b_tenant for item in items):
        return "listed B's users"
    return None


def leak_tenant_field(key: str, value: Callable[[World], str]) -> Leak:
    def leak(world: World, body: Any) -> str | None:
        return f"answered with B's {key}" if str(body.get(key)) == value(world) else None

    return leak


def leak_created(what: str) -> Leak:
    def leak(world: World, body: Any) -> str | None:
        return f"created the {what} in B" if body.get("tenantId") == world.b_tenant else None

    return leak


def leak_usage(world: World, body: Any) -> str | None:
    # A received one guest message, B two: a total of two or more inbound messages can only be B's.
    return "answered with B's usage" if inbound_total(body) >= 2 else None


def leak_audit(world: World, body: Any) -> str | None:
    return "listed entries of B's admin" if body.get("items") else None


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET /auth/me", fixed(lambda w, c: Call("GET", "/auth/me")),
        lambda w, c: Call("GET", "/auth/me", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        USERS, cross_kind="scoped", leak=leak_me),
    Endpoint(
        "GET /api/users", fixed(lambda w, c: Call("GET", "/api/users")),
        lambda w, c: Call("GET", "/api/users", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        USERS, cross_kind="scoped", leak=leak_users),
    Endpoint(
        "POST /api/users", fixed(lambda w, c: Call("POST", "/api/users", json=new_user_body(w))),
        lambda w, c: Call("POST", "/api/users", params={"tenantId": w.b_tenant}, headers=w.naming_b(),
                          json={**new_user_body(w), "tenantId": w.b_tenant}),
        ADMIN, cross_kind="scoped", leak=leak_created("user"), creates="user"),
    Endpoint(
        "GET /api/users/{id}", fixed(lambda w, c: Call("GET", f"/api/users/{w.a.user['id']}")),
        lambda w, c: Call("GET", f"/api/users/{w.b_attendant.id}"), USERS),
    Endpoint(
        "PATCH /api/users/{id}",
        fixed(lambda w, c: Call("PATCH", f"/api/users/{w.a_attendant.id if c == 'admin' else w.a.user['id']}",
                                json={"name": f"Renamed by {c}"})),
        lambda w, c: Call("PATCH", f"/api/users/{w.b_attendant.id}", json={"name": "Pwned", "role": "admin"}),
        ADMIN),
    Endpoint(
        "DELETE /api/users/{id}", sacrificial_user,
        lambda w, c: Call("DELETE", f"/api/users/{w.b_attendant.id}"), ADMIN),
    Endpoint(
        "GET /api/tenant", fixed(lambda w, c: Call("GET", "/api/tenant")),
        lambda w, c: Call("GET", "/api/tenant", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        USERS, cross_kind="scoped", leak=leak_tenant_field("id", lambda w: w.b_tenant)),
    Endpoint(
        "PATCH /api/tenant", fixed(lambda w, c: Call("PATCH", "/api/tenant", json={"name": f"Hotel A ({c})"})),
        lambda w, c: Call("PATCH", "/api/tenant", params={"tenantId": w.b_tenant}, headers=w.naming_b(),
                          json={"name": "Pwned", "tenantId": w.b_tenant}),
        ADMIN, cross_kind="scoped", leak=leak_tenant_field("id", lambda w: w.b_tenant)),
    Endpoint(
        "GET /api/tenant/whatsapp", fixed(lambda w, c: Call("GET", "/api/tenant/whatsapp")),
        lambda w, c: Call("GET", "/api/tenant/whatsapp", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        ADMIN, cross_kind="scoped", leak=leak_tenant_field("phoneNumberId", lambda w: w.b.phone_number_id)),
    Endpoint(
        "PUT /api/tenant/whatsapp (B's number: 409 accepted)",
        fixed(lambda w, c: Call("PUT", "/api/tenant/whatsapp", json=whatsapp_body(w.a, w.a.phone_number_id))),
        lambda w, c: Call("PUT", "/api/tenant/whatsapp", json=whatsapp_body(w.a, w.b.phone_number_id)),
        ADMIN, also_refused=frozenset({409})),
    Endpoint(
        "GET /api/tenant/api-keys", fixed(lambda w, c: Call("GET", "/api/tenant/api-keys")),
        lambda w, c: Call("GET", "/api/tenant/api-keys", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        ADMIN, cross_kind="scoped", leak=leak_items("id", lambda w: {str(w.b_key["id"])})),
    Endpoint(
        "POST /api/tenant/api-keys",
        fixed(lambda w, c: Call("POST", "/api/tenant/api-keys", json={"name": "matrix", "scopes": ["usage:read"]})),
        lambda w, c: Call("POST", "/api/tenant/api-keys", params={"tenantId": w.b_tenant}, headers=w.naming_b(),
                          json={"name": "matrix", "scopes": ["usage:read"], "tenantId": w.b_tenant}),
        ADMIN, cross_kind="scoped", leak=leak_created("key"), creates="key"),
    Endpoint(
        "DELETE /api/tenant/api-keys/{id}", sacrificial_key,
        lambda w, c: Call("DELETE", f"/api/tenant/api-keys/{w.b_key['id']}"), ADMIN),
    Endpoint(
        "GET /api/usage", fixed(lambda w, c: Call("GET", "/api/usage")),
        lambda w, c: Call("GET", "/api/usage", params={"tenantId": w.b_tenant}, headers=w.naming_b()),
        USERS, accepts_key=True, cross_kind="scoped", leak=leak_usage),
    Endpoint(
        "GET /api/audit-logs", fixed(lambda w, c: Call("GET", "/api/audit-logs")),
        lambda w, c: Call("GET", "/api/audit-logs", headers=w.naming_b(),
                          params={"tenantId": w.b_tenant, "actorId": str(w.b.user["id"])}),
        ADMIN, cross_kind="scoped", leak=leak_audit),
    Endpoint(
        "GET /api/conversations/{id}", fixed(lambda w, c: Call("GET", f"/api/conversations/{w.a_conversation}")),
        lambda w, c: Call("GET", f"/api/conversations/{w.b_conversation}"), USERS, accepts_key=True),
    Endpoint(
        "GET /api/conversations/{id}/messages",
        fixed(lambda w, c: Call("GET", f"/api/conversations/{w.a_conversation}/messages")),
        lambda w, c: Call("GET", f"/api/conversations/{w.b_conversation}/messages"), USERS, accepts_key=True),
    Endpoint(
        "GET /api/messages?conversationId=",
        fixed(lambda w, c: Call("GET", "/api/messages", params={"conversationId": w.a_conversation})),
        lambda w, c: Call("GET", "/api/messages", params={"conversationId": w.b_conversation}), USERS,
        accepts_key=True),
    Endpoint(  # super admins only: A's callers may not even list
        "GET /api/tenants (super admin)", fixed(lambda w, c: Call("GET", "/api/tenants")),
        lambda w, c: Call("GET", "/api/tenants", params={"q": str(w.b.tenant["name"])}), NOBODY),
    Endpoint(  # last: were it allowed, A would be suspended
        "POST /api/tenants/{id}/suspend (super admin)",
        fixed(lambda w, c: Call("POST", f"/api/tenants/{w.a.tenant['id']}/suspend")),
        lambda w, c: Call("POST", f"/api/tenants/{w.b_tenant}/suspend"), NOBODY),
)


@dataclass(frozen=True)
class Row:
    endpoint: Endpoint
    caller: Caller

    @property
    def id(self) -> str:
        return f"{self.endpoint.name} as {self.caller}"


ROWS = [Row(endpoint, caller) for endpoint in ENDPOINTS for caller in CALLERS]


def expected_own(row: Row) -> str:
    if row.caller == "anonymous":
        return "401"
    if row.caller == "api_key" and not row.endpoint.accepts_key:
        return "403 API_KEY_NOT_ALLOWED"
    return "2xx" if row.endpoint.may(row.caller) else "403"


def expected_cross(row: Row) -> str:
    if row.caller == "anonymous":
        return "401"
    if row.caller == "api_key" and not row.endpoint.accepts_key:
        return "403 API_KEY_NOT_ALLOWED"
    if row.endpoint.cross_kind == "scoped" and row.endpoint.may(row.caller):
        return "2xx with only A's data, or a 4xx refusal other than 401"
    refused = sorted({403, 404} | set(row.endpoint.also_refused))
    return " or ".join(str(status) for status in refused)


def judge_own(row: Row, response: httpx.Response) -> list[str]:
    status, code = response.status_code, problem_code(response)
    expected = expected_own(row)
    if expected == "401":
        return [] if status == 401 else [f"own call: {status} instead of 401"]
    if expected == "403 API_KEY_NOT_ALLOWED":
        return [] if (status, code) == (403, "API_KEY_NOT_ALLOWED") else [f"own call: {status} {code} instead of "
                                                                             "403 API_KEY_NOT_ALLOWED"]
    if expected == "403":
        return [] if status == 403 else [f"own call: {status} {code} instead of 403"]
    return [] if 200 <= status < 300 else [f"own call refused: {status} {code} {response.text[:200]}"]


def judge_cross(world: World, row: Row, response: httpx.Response) -> list[str]:
    status, code = response.status_code, problem_code(response)
    expected = expected_cross(row)
    if expected == "401":
        return [] if status == 401 else [f"B's ids: {status} instead of 401"]
    if status == 401:
        return [f"B's ids: 401 {code} for an authenticated caller"]
    if expected == "403 API_KEY_NOT_ALLOWED":
        return [] if (status, code) == (403, "API_KEY_NOT_ALLOWED") else [f"B's ids: {status} {code}"]
    if row.endpoint.cross_kind == "scoped" and row.endpoint.may(row.caller):
        if 200 <= status < 300 and row.endpoint.leak is not None:
            leaked = row.endpoint.leak(world, response.json() if response.content else {})
            return [f"B's ids: {status} and {leaked}"] if leaked else []
        return [] if 400 <= status < 500 else [f"B's ids: {status} {code}"]
    if 200 <= status < 300:
        return [f"B's ids: {status}, a success on another tenant's data"]
    accepted = {403, 404} | set(row.endpoint.also_refused)
    return [] if status in accepted else [f"B's ids: {status} {code} instead of {expected}"]


def shown(response: httpx.Response) -> str:
    code = problem_code(response)
    return f"{response.status_code} {code}" if code else str(response.status_code)


def remember_created(world: World, endpoint: Endpoint, response: httpx.Response) -> None:
    if endpoint.creates is not None and 200 <= response.status_code < 300 and "id" in response.json():
        leftovers = world.leftover_users if endpoint.creates == "user" else world.leftover_keys
        leftovers.append(str(response.json()["id"]))


async def send(http: httpx.AsyncClient, world: World, call: Call, caller: Caller) -> httpx.Response:
    return await http.request(call.method, f"{world.stack.gateway}{call.path}", params=call.params, json=call.json,
                              headers={**world.headers(caller), **call.headers})


async def b_state(http: httpx.AsyncClient, world: World) -> dict[str, tuple[int, Any]]:
    """Everything of B that A's callers could have touched, read as B's admin."""
    gateway, headers = world.stack.gateway, world.b.auth
    reads = {
        "users": ("/api/users", {"includeInactive": "true", "limit": "100"}),
        "tenant": ("/api/tenant", None),
        "whatsapp": ("/api/tenant/whatsapp", None),
        "api keys": ("/api/tenant/api-keys", {"includeRevoked": "true"}),
        "conversation": (f"/api/conversations/{world.b_conversation}", None),
        "messages": ("/api/messages", {"conversationId": world.b_conversation, "limit": "100"}),
    }
    state: dict[str, tuple[int, Any]] = {}
    for name, (path, params) in reads.items():
        response = await http.get(f"{gateway}{path}", params=params, headers=headers)
        state[name] = (response.status_code, response.json() if response.content else None)
    return state


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(stack: StackUrls) -> AsyncIterator[World]:
    async with loopback_client(timeout=30) as http:
        a, b = await register_hotel(http, stack), await register_hotel(http, stack)
        a_attendant = await create_user(http, stack, a.access_token)
        b_attendant = await create_user(http, stack, b.access_token)
        a_key = await create_api_key(http, stack, a.access_token)
        b_key = await create_api_key(http, stack, b.access_token)
        a_conversation, _ = await guest_conversation(http, stack, a, "A guest asks for a late checkout")
        b_guest = new_wa_id()
        b_conversation, first = await guest_conversation(http, stack, b, "B guest asks for towels", b_guest)
        second = await guest_writes(http, stack, b.phone_number_id, "and a pillow", wa_id=b_guest)

        async def both_settled() -> bool:  # stored, and counted on the conversation (its consumer is async)
            messages = await http.get(f"{stack.gateway}/api/messages", headers=b.auth,
                                      params={"conversationId": b_conversation})
            conversation = await http.get(f"{stack.gateway}/api/conversations/{b_conversation}", headers=b.auth)
            return (messages.status_code == conversation.status_code == 200
                    and {m["wamid"] for m in messages.json()["items"]} == {first, second["wamid"]}
                    and conversation.json()["unreadCount"] == 2)

        await eventually(both_settled)
        world = World(stack=stack, a=a, b=b, a_attendant=a_attendant, b_attendant=b_attendant, a_key=a_key,
                      b_key=b_key, a_conversation=a_conversation, b_conversation=b_conversation)
        await settle_usage(http, world)
        world.b_before = await b_state(http, world)
        yield world


async def settle_usage(http: httpx.AsyncClient, world: World, timeout: float = 60.0) -> None:
    """Gives the usage consumer time to count both hotels' messages (the usage rows compare A's and B's counts).
    Not an assertion: the rows themselves judge what /api/usage answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = []
        for hotel in (world.a, world.b):
            response = await http.get(f"{world.stack.gateway}/api/usage", headers=hotel.auth)
            counts.append(inbound_total(response.json()) if response.status_code == 200 else -1)
        if counts == [1, 2] or -1 in counts:
            return
        await asyncio.sleep(0.5)


@pytest_asyncio.fixture(scope="module", loop_scope="session", autouse=True)
async def matrix_report() -> AsyncIterator[None]:
    MATRIX_REPORT.clear()
    yield
    if not MATRIX_REPORT:
        return
    lines = [
        "# Isolation matrix (tests-e2e/test_isolation_matrix.py)",
        "",
        "Tenant A's callers against their own ids, then against tenant B's. \"(B named)\": the path has no id, so the"
        " call names B's tenant instead (`tenantId` in the query and body, an `X-Tenant-Id` header); the caller's"
        " tenant comes from its token, so it may succeed, but only with A's data (checked per endpoint).",
        "",
        "| endpoint | caller | A's own ids | expected | B's ids | expected | result |",
        "|---|---|---|---|---|---|---|",
        *MATRIX_REPORT,
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_isolation(row: Row, world: World, http: httpx.AsyncClient) -> None:
    own_call = await row.endpoint.own(world, http, row.caller)
    own = await send(http, world, own_call, row.caller)
    remember_created(world, row.endpoint, own)
    cross = await send(http, world, row.endpoint.cross(world, row.caller), row.caller)
    remember_created(world, row.endpoint, cross)
    problems = judge_own(row, own) + judge_cross(world, row, cross)
    await world.clean_up(http)
    named = " (B named)" if row.endpoint.cross_kind == "scoped" else ""
    MATRIX_REPORT.append(
        f"| `{row.endpoint.name}` | {row.caller} | {shown(own)} | {expected_own(row)} | {shown(cross)}{named} | "
        f"{expected_cross(row)} | {'ok' if not problems else 'FAIL: ' + '; '.join(problems)} |")
    assert not problems, problems


async def test_tenant_b_is_unchanged_after_the_matrix(world: World, http: httpx.AsyncClient) -> None:
    after = await b_state(http, world)
    for name, (status, _) in world.b_before.items():
        assert status == 200, f"B's {name} could not be read before the matrix ({status})"
    assert after == world.b_before
    MATRIX_REPORT.append(f"| B's users, tenant, WhatsApp view, API keys, conversation, messages | B's admin | "
                         f"{', '.join(f'{name} {status}' for name, (status, _) in after.items())} | 200 | "
                         f"unchanged | unchanged | ok |")
