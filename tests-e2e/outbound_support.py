"""Helpers of the outbound end-to-end tests: a hotel of the test's own (its number, and its WABA, at the simulator),
a guest who wrote to it, messages sent through `POST /api/messages`, and what the simulator (Meta) received."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from e2e_support import (
    Hotel,
    SocketRecorder,
    StackUrls,
    bearer,
    eventually,
    loopback_client,
    new_wa_id,
    register_hotel,
)
from eva_testing.infra import test_infra

POLL = 0.5  # seconds between REST polls: every poll counts against the gateway's 300 calls a minute per user
SETTLE = 30.0  # how long a sent message may take to reach a status (the simulator's statuses come within 2 s)
OVERLOADED_RETRIES = 5  # sends refused 503 OVERLOADED (admission control) are sent again this many times at most


def new_waba_id() -> str:
    """A WABA of the test's own: the simulator's templates are per WABA, and template webhooks reach every number
    (hence every hotel) of one."""
    return str(10**14 + secrets.randbelow(9 * 10**14))


@dataclass(frozen=True)
class Guest:
    """A guest who wrote to the hotel: their conversation and the message they wrote (Eva's id and Meta's wamid)."""

    conversation_id: str
    message_id: str
    wamid: str
    wa_id: str | None
    user_id: str | None = None


@dataclass
class Desk:
    """A hotel of its own (number, WABA and access token registered at the simulator and in Eva), its admin's
    socket, and the calls the outbound tests make."""

    stack: StackUrls
    http: httpx.AsyncClient
    hotel: Hotel
    waba_id: str
    socket: SocketRecorder

    @property
    def number(self) -> str:
        return self.hotel.phone_number_id

    @property
    def auth(self) -> dict[str, str]:
        return self.hotel.auth

    # --- the guest's side (the simulator) -----------------------------------------------------------------------

    async def guest_writes(self, text: str, *, wa_id: str | None = None, user_id: str | None = None,
                           timestamp: int | None = None) -> Guest:
        """A guest writes (by phone number, or by business-scoped user id alone); returns once the admin's socket
        announced the message."""
        body: dict[str, Any] = {"phoneNumberId": self.number, "name": "Inês Duarte", "text": text}
        if user_id is not None:
            body["userId"] = user_id
        else:
            wa_id = wa_id or new_wa_id()
            body["from"] = wa_id
        if timestamp is not None:
            body["timestamp"] = timestamp
        response = await self.http.post(f"{self.stack.simulator}/_sim/guest-messages", json=body)
        assert response.status_code == 200, response.text
        sent = response.json()
        assert [a["status"] for a in sent["attempts"]] == [200], sent
        event = await self.socket.wait_for("message:new", lambda data: data.get("wamid") == sent["wamid"],
                                           timeout=30.0)
        conversation_id = str(event["conversationId"])
        sent_at = datetime.fromisoformat(str(event["sentAt"]))

        async def counted() -> bool:  # the conversation applied it too (its own consumer: not the socket's moment)
            seen = (await self.conversation(conversation_id)).get("lastInboundAt")
            return seen is not None and datetime.fromisoformat(seen) >= sent_at

        await eventually(counted, timeout=30.0, interval=POLL)
        return Guest(conversation_id=conversation_id, message_id=str(event["id"]), wamid=str(sent["wamid"]),
                     wa_id=wa_id, user_id=user_id)

    # --- Eva's side ---------------------------------------------------------------------------------------------

    async def send(self, conversation_id: str, kind: str, content: Any, *, reply_to: str | None = None,
                   key: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """`POST /api/messages` (as the hotel's admin unless `headers` say otherwise)."""
        body: dict[str, Any] = {"conversationId": conversation_id, "type": kind, kind: content}
        if reply_to is not None:
            body["replyToMessageId"] = reply_to
        sent_headers = dict(headers if headers is not None else self.auth)
        if key is not None:
            sent_headers["Idempotency-Key"] = key
        for _ in range(OVERLOADED_RETRIES):  # as a client must: 503 OVERLOADED stored nothing, retry after its wait
            response = await self.http.post(f"{self.stack.gateway}/api/messages", json=body, headers=sent_headers)
            if response.status_code != 503 or response.json().get("code") != "OVERLOADED":
                return response
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        return response

    async def accepted(self, conversation_id: str, kind: str, content: Any, **options: Any) -> dict[str, Any]:
        """A send Eva accepted: 201 and the message PENDING."""
        response = await self.send(conversation_id, kind, content, **options)
        assert response.status_code == 201, response.text
        message: dict[str, Any] = response.json()
        assert message["status"] == "PENDING" and message["direction"] == "outbound", message
        return message

    async def status_event(self, message_id: str, status: str, timeout: float = SETTLE,
                           socket: SocketRecorder | None = None) -> dict[str, Any]:
        """The `message:status` of `message_id` reaching `status` on the admin's socket (or `socket`)."""
        event: dict[str, Any] = await (socket or self.socket).wait_for(
            "message:status", lambda data: data.get("messageId") == message_id and data.get("status") == status,
            timeout=timeout)
        return event

    async def message(self, conversation_id: str, message_id: str,
                      ready: Callable[[dict[str, Any]], bool] = lambda _: True,
                      timeout: float = SETTLE) -> dict[str, Any]:
        """The message as REST shows it (`GET /api/messages?conversationId=`), once `ready(message)` holds."""
        async def probe() -> dict[str, Any] | None:
            items = [m for m in await self.messages(conversation_id) if m["id"] == message_id]
            return items[0] if items and ready(items[0]) else None

        message: dict[str, Any] = await eventually(probe, timeout=timeout, interval=POLL)
        return message

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.stack.gateway}/api/messages",
                                       params={"conversationId": conversation_id, "limit": "100"}, headers=self.auth)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.stack.gateway}/api/conversations/{conversation_id}",
                                       headers=self.auth)
        assert response.status_code == 200, response.text
        conversation: dict[str, Any] = response.json()
        return conversation

    async def upload(self, content: bytes, mime_type: str, filename: str) -> dict[str, Any]:
        """`POST /api/media`: a file to send later as `mediaId`."""
        response = await self.http.post(f"{self.stack.gateway}/api/media", headers=self.auth,
                                        files={"file": (filename, content, mime_type)})
        assert response.status_code == 201, response.text
        upload: dict[str, Any] = response.json()
        return upload

    async def templates(self, **filters: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.stack.gateway}/api/templates", params=filters, headers=self.auth)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def sync_templates(self) -> dict[str, Any]:
        response = await self.http.post(f"{self.stack.gateway}/api/templates/sync", headers=self.auth)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    # --- what Meta (the simulator) received ---------------------------------------------------------------------

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.stack.simulator}/_sim{path}", **kwargs)
        assert response.status_code in (200, 201), (path, response.text)
        return response.json()

    async def sent(self) -> list[dict[str, Any]]:
        """Every send the simulator accepted for this number, in the order they came in."""
        items: list[dict[str, Any]] = (await self.sim("GET", "/sent-messages",
                                                      params={"phoneNumberId": self.number}))["items"]
        return sorted(items, key=lambda item: (item.get("receivedAt") or item["acceptedAt"]))

    async def sends_of(self, message_id: str) -> list[dict[str, Any]]:
        """The simulator's sends of one Eva message (every send carries `biz_opaque_callback_data = eva:<id>`)."""
        return [item for item in await self.sent()
                if item["request"].get("biz_opaque_callback_data") == f"eva:{message_id}"]

    async def sent_once(self, message_id: str, timeout: float = SETTLE) -> dict[str, Any]:
        """The one send of `message_id` at the simulator, once it came in."""
        async def probe() -> list[dict[str, Any]]:
            return await self.sends_of(message_id)

        sends: list[dict[str, Any]] = await eventually(probe, timeout=timeout, interval=POLL)
        assert len(sends) == 1, sends
        return sends[0]

    async def fault(self, **fault: Any) -> None:
        await self.sim("POST", "/faults", json={"phoneNumberId": self.number, **fault})

    async def throughput(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.sim("GET", "/throughput", params={"phoneNumberId": self.number})
        return result

    async def read_receipts(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.sim("GET", "/read-receipts",
                                                      params={"phoneNumberId": self.number}))["items"]
        return items

    async def meta_media(self, media_id: str) -> dict[str, Any]:
        """Meta's view of an uploaded media id (`GET /v21.0/{media_id}` with the number's token)."""
        response = await self.http.get(f"{self.stack.simulator}/v21.0/{media_id}",
                                       params={"phone_number_id": self.number},
                                       headers=bearer(self.hotel.access_token_wa))
        assert response.status_code == 200, response.text
        media: dict[str, Any] = response.json()
        return media

    # --- the hotel's WhatsApp settings --------------------------------------------------------------------------

    async def put_whatsapp(self, **changes: Any) -> dict[str, Any]:
        body = {"phoneNumberId": self.number, "wabaId": self.waba_id, "accessToken": self.hotel.access_token_wa,
                "appSecret": self.hotel.app_secret, "verifyToken": self.hotel.verify_token, **changes}
        response = await self.http.put(f"{self.stack.gateway}/api/tenant/whatsapp", headers=self.auth, json=body)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def whatsapp(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.stack.gateway}/api/tenant/whatsapp", headers=self.auth)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view


async def configure_number(http: httpx.AsyncClient, stack: StackUrls, hotel: Hotel, waba_id: str,
                           throughput_mps: int | None = None) -> None:
    """The hotel's number at the simulator (in its own WABA) and in Eva (PUT /api/tenant/whatsapp)."""
    number: dict[str, Any] = {
        "phoneNumberId": hotel.phone_number_id, "wabaId": waba_id, "displayPhoneNumber": "15550783881",
        "accessToken": hotel.access_token_wa, "appSecret": hotel.app_secret,
        "webhookUrl": f"{stack.ingest}/webhooks/whatsapp"}
    if throughput_mps is not None:
        number["throughputMps"] = throughput_mps
    response = await http.post(f"{stack.simulator}/_sim/numbers", json=number)
    assert response.status_code in (200, 201), response.text
    credentials: dict[str, Any] = {
        "phoneNumberId": hotel.phone_number_id, "wabaId": waba_id, "accessToken": hotel.access_token_wa,
        "appSecret": hotel.app_secret, "verifyToken": hotel.verify_token}
    if throughput_mps is not None:
        credentials["throughputMps"] = throughput_mps
    response = await http.put(f"{stack.gateway}/api/tenant/whatsapp", headers=hotel.auth, json=credentials)
    assert response.status_code == 200, response.text


@asynccontextmanager
async def opened_desk(stack: StackUrls, *, throughput_mps: int | None = None,
                      read_receipts: str | None = None) -> AsyncIterator[Desk]:
    """A new hotel with its own number and WABA, its admin's socket open (closed afterwards)."""
    async with loopback_client(timeout=30.0) as http:
        hotel = await register_hotel(http, stack, configure_whatsapp=False)
        waba_id = new_waba_id()
        await configure_number(http, stack, hotel, waba_id, throughput_mps)
        if read_receipts is not None:
            response = await http.patch(f"{stack.gateway}/api/tenant", headers=hotel.auth,
                                        json={"readReceipts": read_receipts})
            assert response.status_code == 200 and response.json()["readReceipts"] == read_receipts, response.text
        socket = SocketRecorder()
        await socket.connect(stack.gateway, hotel.access_token)
        try:
            yield Desk(stack=stack, http=http, hotel=hotel, waba_id=waba_id, socket=socket)
        finally:
            await socket.close()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem+json answer, asserted to have this status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def event_index(socket: SocketRecorder, name: str, predicate: Callable[[Any], bool]) -> int:
    """Where the first matching event is among everything the socket received."""
    for index, (event, data) in enumerate(socket.events):
        if event == name and predicate(data):
            return index
    raise AssertionError(f"no {name} matching on the socket")


async def wait_after(socket: SocketRecorder, mark: int, name: str, predicate: Callable[[Any], bool],
                     timeout: float = SETTLE) -> Any:
    """The first matching event among those the socket received after the first `mark` events."""
    async def probe() -> Any:
        found = [data for event, data in socket.events[mark:] if event == name and predicate(data)]
        return found[0] if found else None

    return await eventually(probe, timeout=timeout, interval=0.1)


def statuses_of(message: dict[str, Any]) -> list[str]:
    return [change["status"] for change in message["statusHistory"]]


def request_of(message_id: str, recipient: dict[str, str], kind: str, content: Any,
               context: str | None = None) -> dict[str, Any]:
    """Meta's `/messages` body Eva must send for a message (reference §5): snake_case, its id echoed back."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient,
                            "type": kind, kind: content, "biz_opaque_callback_data": f"eva:{message_id}"}
    if context is not None:
        body["context"] = {"message_id": context}
    return body


async def outbound_job_state(tenant_id: str, message_id: str) -> str | None:
    """The state of a message's delivery job in the messaging service's database (pending, sending, done, failed):
    the only place that says whether a sender will still call Meta for it."""
    connection = await asyncpg.connect(test_infra().raw_owner_dsn("eva_messaging"))
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            state = await connection.fetchval("SELECT state FROM outbound_jobs WHERE message_id = $1",
                                              uuid.UUID(message_id))
    finally:
        await connection.close()
    return str(state) if state is not None else None


async def until(probe: Callable[[], Any], timeout: float = SETTLE) -> Any:
    """`eventually` at the outbound tests' polling pace."""
    return await eventually(probe, timeout=timeout, interval=POLL)


def now() -> int:
    return int(time.time())


async def gather_limited(jobs: list[Any], limit: int = 10) -> list[Any]:
    """Runs coroutines `limit` at a time, in order of their results."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs)))
