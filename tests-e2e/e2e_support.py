"""Helpers of the end-to-end tests: the stack's URLs, hotels registered through the public API, their members,
API keys and guests (through the simulator), and a recording Socket.io client."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import socketio

ALL_SCOPES = ("conversations:read", "conversations:write", "messages:read", "messages:send", "usage:read")
# Rows of the isolation matrix (markdown), filled by test_isolation_matrix.py and shown in the terminal summary.
MATRIX_REPORT: list[str] = []
PATIENCE_SECONDS = 90.0  # how long setup calls wait out the gateway's per-IP limit on /auth/* (429 + Retry-After)


@dataclass(frozen=True)
class StackUrls:
    gateway: str
    gateway_replica: str
    ingest: str
    simulator: str
    platform_verify_token: str
    auth_http: str = "http://127.0.0.1:18101"
    super_admin_email: str = "super@eva.local"
    super_admin_password: str = ""
    n8n: str = "http://127.0.0.1:13003"


@dataclass
class Hotel:
    """A tenant registered through the public API, with its WhatsApp number known to the simulator."""

    access_token: str
    refresh_token: str
    user: dict[str, Any]
    tenant: dict[str, Any]
    email: str
    password: str
    phone_number_id: str
    app_secret: str
    access_token_wa: str
    verify_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def loopback_client(timeout: float = 20.0) -> httpx.AsyncClient:
    """An HTTP client whose requests come from its own loopback address (127.x.y.z): every test is a different
    client IP for the per-IP limits on /auth/* (the gateway's and auth's login throttle), as real callers are."""
    address = f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    return httpx.AsyncClient(timeout=timeout, transport=httpx.AsyncHTTPTransport(local_address=address))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def patiently(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Sends a setup call again while the gateway's per-IP rate limit refuses it (429 RATE_LIMITED), waiting as
    Retry-After says. Only for setup: tests about throttling look at the 429 themselves."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        response = await send()
        if response.status_code != 429 or response.json().get("code") != "RATE_LIMITED":
            return response
        wait = float(response.headers.get("Retry-After", "1"))
        if time.monotonic() + wait > deadline:
            return response
        await asyncio.sleep(wait)


async def login(http: httpx.AsyncClient, stack: StackUrls, email: str, password: str,
                tenant_slug: str | None = None) -> httpx.Response:
    body = {"email": email, "password": password, **({"tenantSlug": tenant_slug} if tenant_slug else {})}
    return await patiently(lambda: http.post(f"{stack.gateway}/auth/login", json=body))


async def register_hotel(http: httpx.AsyncClient, stack: StackUrls, *, configure_whatsapp: bool = True) -> Hotel:
    email = f"admin-{uuid.uuid4().hex[:8]}@hotel.test"
    password = "correct horse battery staple"
    response = await patiently(lambda: http.post(f"{stack.gateway}/auth/register", json={
        "tenantName": f"Hotel {uuid.uuid4().hex[:6]}", "name": "Front Desk Admin", "email": email,
        "password": password}))
    assert response.status_code in (200, 201), response.text
    session = response.json()
    hotel = Hotel(
        access_token=session["accessToken"], refresh_token=session["refreshToken"], user=session["user"],
        tenant=session["tenant"], email=email, password=password,
        phone_number_id=str(10**14 + secrets.randbelow(9 * 10**14)), app_secret=secrets.token_hex(16),
        access_token_wa="EAA" + secrets.token_urlsafe(32), verify_token=secrets.token_urlsafe(16),
    )
    if configure_whatsapp:
        number = {"phoneNumberId": hotel.phone_number_id, "wabaId": "102290129340398",
                  "displayPhoneNumber": "15550783881", "accessToken": hotel.access_token_wa,
                  "appSecret": hotel.app_secret, "webhookUrl": f"{stack.ingest}/webhooks/whatsapp"}
        response = await http.post(f"{stack.simulator}/_sim/numbers", json=number)
        assert response.status_code in (200, 201), response.text
        response = await http.put(f"{stack.gateway}/api/tenant/whatsapp", headers=hotel.auth, json={
            "phoneNumberId": hotel.phone_number_id, "wabaId": "102290129340398",
            "accessToken": hotel.access_token_wa, "appSecret": hotel.app_secret,
            "verifyToken": hotel.verify_token})
        assert response.status_code == 200, response.text
    return hotel


@dataclass
class Member:
    """A user an admin created through POST /api/users, logged in."""

    user: dict[str, Any]
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.access_token)


async def create_user(http: httpx.AsyncClient, stack: StackUrls, admin_token: str, *, role: str = "attendant",
                      log_in: bool = True) -> Member:
    email = f"{role}-{uuid.uuid4().hex[:8]}@hotel.test"
    password = "another correct horse " + secrets.token_hex(4)
    response = await http.post(f"{stack.gateway}/api/users", headers=bearer(admin_token), json={
        "name": f"{role.title()} {uuid.uuid4().hex[:4]}", "email": email, "password": password, "role": role})
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["role"] == role and user["email"] == email
    member = Member(user=user, email=email, password=password, access_token="", refresh_token="")
    if log_in:
        response = await login(http, stack, email, password)
        assert response.status_code == 200, response.text
        member.access_token = response.json()["accessToken"]
        member.refresh_token = response.json()["refreshToken"]
    return member


async def create_api_key(http: httpx.AsyncClient, stack: StackUrls, admin_token: str,
                         scopes: tuple[str, ...] = ALL_SCOPES, name: str | None = None) -> dict[str, Any]:
    """A new API key of the admin's tenant: {id, name, prefix, scopes, createdAt, expiresAt, key}."""
    response = await http.post(f"{stack.gateway}/api/tenant/api-keys", headers=bearer(admin_token),
                               json={"name": name or f"key {uuid.uuid4().hex[:6]}", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["key"].startswith("eva_") and sorted(created["scopes"]) == sorted(scopes)
    return created


async def guest_writes(http: httpx.AsyncClient, stack: StackUrls, phone_number_id: str, text: str,
                       *, wa_id: str, deliveries: int = 1) -> dict[str, Any]:
    """A guest writes to a hotel's number: the simulator signs and posts the webhook like Meta does."""
    response = await http.post(f"{stack.simulator}/_sim/guest-messages", json={
        "phoneNumberId": phone_number_id, "from": wa_id, "name": "José Álvarez", "text": text,
        "deliveries": deliveries})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def new_wa_id() -> str:
    """A guest's number; a million of them, so that the 60 guests of a test never share one (two would share a
    conversation)."""
    return "1650555" + str(secrets.randbelow(10**6)).zfill(6)


async def guest_conversation(http: httpx.AsyncClient, stack: StackUrls, hotel: Hotel, text: str,
                             wa_id: str | None = None) -> tuple[str, str]:
    """A guest writes to the hotel; returns (conversation id, wamid) once the hotel's admin socket announced it."""
    socket = SocketRecorder()
    await socket.connect(stack.gateway, hotel.access_token)
    try:
        sent = await guest_writes(http, stack, hotel.phone_number_id, text, wa_id=wa_id or new_wa_id())
        assert [a["status"] for a in sent["attempts"]] == [200], sent
        event = await socket.wait_for("message:new", lambda data: data.get("wamid") == sent["wamid"])
    finally:
        await socket.close()
    return str(event["conversationId"]), str(sent["wamid"])


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.25) -> Any:
    """Polls `probe` until it returns something truthy; fails with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def problem_code(response: httpx.Response) -> str | None:
    """The stable `code` of a problem+json answer (None for anything else)."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    code = response.json().get("code")
    return str(code) if code is not None else None


class SocketRecorder:
    """A Socket.io client (the python-socketio client speaks the same protocol v5 as socket.io-client@4)
    that records every server event."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

        @self.client.on("*")
        async def any_event(event: str, data: Any) -> None:
            async with self._changed:
                self.events.append((event, data))
                self._changed.notify_all()

    async def connect(self, url: str, token: str) -> None:
        await self.client.connect(url, auth={"token": token}, transports=["websocket"], socketio_path="socket.io",
                                  wait_timeout=10)

    async def wait_for(self, event: str, predicate: Any = lambda _: True, timeout: float = 15.0) -> Any:
        async def found() -> Any:
            async with self._changed:
                while True:
                    for name, data in self.events:
                        if name == event and predicate(data):
                            return data
                    await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)

    def named(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def close(self) -> None:
        await self.client.disconnect()



# --- Meta's inbound payloads (reference §3), retargeted at a test hotel ------------------------------------------

REFERENCE_PAYLOADS = Path(__file__).resolve().parent / "data" / "meta_inbound_payloads.json"


def reference_payload(name: str) -> dict[str, Any]:
    """A fresh copy of one of Meta's webhook payloads of the reference, verbatim (tests-e2e/data, extracted from
    reference §3.1–3.23, see docs/architecture.md: text, image, audio, voice, …, status_read, status_failed)."""
    payloads: dict[str, Any] = json.loads(REFERENCE_PAYLOADS.read_text(encoding="utf-8"))
    payload: dict[str, Any] = copy.deepcopy(payloads[name]["payload"])
    return payload


def new_wamid() -> str:
    """A unique id shaped like Meta's (`wamid.` + base64)."""
    return "wamid.HBgLE2E" + base64.b64encode(secrets.token_bytes(18)).decode("ascii")


def new_bsuid() -> str:
    return "US." + str(10**19 + secrets.randbelow(9 * 10**19))


def changes_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [change["value"] for entry in payload["entry"] for change in entry["changes"]]


def retarget(payload: dict[str, Any], *, phone_number_id: str, wa_id: str,
             wamids: list[str] | None = None) -> list[str]:
    """Points a reference payload at a test hotel (in place), changing only ids: the business number's
    phone_number_id, the guest's wa id (and business-scoped user ids) and the messages' wamids (fresh unique ones,
    or `wamids` in order). Returns the messages' wamids in payload order."""
    given = iter(wamids or [])
    result: list[str] = []
    user_id = new_bsuid()
    for value in changes_of(payload):
        value["metadata"]["phone_number_id"] = phone_number_id
        for contact in value.get("contacts", []):
            if "wa_id" in contact:
                contact["wa_id"] = wa_id
            for key in ("user_id", "parent_user_id"):
                if key in contact:
                    contact[key] = user_id if key == "user_id" else user_id + ".P"
        for message in value.get("messages", []):
            if "from" in message:
                message["from"] = wa_id
            message["id"] = next(given, None) or new_wamid()
            result.append(message["id"])
        for item in value.get("statuses", []):
            item["recipient_id"] = wa_id
    return result


async def deliver(http: httpx.AsyncClient, stack: StackUrls, phone_number_id: str, payload: dict[str, Any] | None,
                  **options: Any) -> dict[str, Any]:
    """Posts a delivery through the simulator (signed with the number's app secret, serialized like Meta); options
    are /_sim/deliveries fields (rawBody, deliveries, retry, ...). Returns the simulator's account of attempts."""
    body = {"phoneNumberId": phone_number_id, **({"payload": payload} if payload is not None else {}), **options}
    response = await http.post(f"{stack.simulator}/_sim/deliveries", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def all_messages(http: httpx.AsyncClient, stack: StackUrls, auth: dict[str, str],
                       conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a conversation through GET /api/messages?conversationId= (following nextCursor)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        params = {"conversationId": conversation_id, "limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await http.get(f"{stack.gateway}/api/messages", params=params, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("nextCursor")
        if not cursor:
            return items
    raise AssertionError("more than 100 pages of messages")


async def stored_message(http: httpx.AsyncClient, stack: StackUrls, auth: dict[str, str], conversation_id: str,
                         wamid: str, ready: Callable[[dict[str, Any]], bool] = lambda _: True,
                         timeout: float = 20.0) -> dict[str, Any]:
    """The message `wamid` as the API shows it, once `ready(message)` holds."""
    async def probe() -> dict[str, Any] | None:
        found = [m for m in await all_messages(http, stack, auth, conversation_id) if m["wamid"] == wamid]
        return found[0] if found and ready(found[0]) else None

    message: dict[str, Any] = await eventually(probe, timeout=timeout)
    return message


def pick(document: dict[str, Any] | None, snake: str) -> Any:
    """A field of a Meta object kept by Eva, whichever spelling it kept (Meta's snake_case or camelCase)."""
    if not document:
        return None
    head, *rest = snake.split("_")
    return document.get(snake, document.get(head + "".join(part.title() for part in rest)))


@dataclass
class Inbox:
    """A hotel of its own (one per test module), its admin's socket (which tells the conversation of each wamid)
    and a client."""

    stack: StackUrls
    http: httpx.AsyncClient
    hotel: Hotel
    socket: SocketRecorder

    async def conversation_of(self, wamid: str, timeout: float = 20.0) -> str:
        event = await self.socket.wait_for("message:new", lambda data: data.get("wamid") == wamid, timeout=timeout)
        return str(event["conversationId"])

    async def message(self, wamid: str, ready: Callable[[dict[str, Any]], bool] = lambda _: True,
                      timeout: float = 20.0) -> dict[str, Any]:
        conversation_id = await self.conversation_of(wamid)
        return await stored_message(self.http, self.stack, self.hotel.auth, conversation_id, wamid, ready,
                                    timeout=timeout)


def restore_stack() -> None:
    """Starts whatever a disruptive test stopped or killed: the infrastructure (scripts/infra.py) and every
    deployable (scripts/stack.py), both idempotent."""
    root = Path(__file__).resolve().parent.parent
    for command in (["scripts/infra.py", "up", "--profile", "test"],
                    ["scripts/stack.py", "up", "--profile", "test", "--no-seed"]):
        result = subprocess.run([sys.executable, *command], cwd=root, text=True, capture_output=True, check=False,
                                timeout=300)
        assert result.returncode == 0, f"{command[0]} did not bring the stack back:\n{result.stdout}\n{result.stderr}"
