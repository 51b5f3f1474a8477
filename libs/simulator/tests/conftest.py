"""Fixtures: a real webhook receiver (uvicorn on a free port) that verifies Meta signatures on its own,
and simulator instances reachable over ASGI or real HTTP."""

import asyncio
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from eva_simulator.app import create_app
from eva_simulator.server import RunningServer, serve_in_background
from eva_simulator.settings import Settings
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

PNID = "106540352242922"
WABA_ID = "102290129340398"
DISPLAY = "15550783881"
TOKEN = "EAAG-sim-test-token-1"
APP_SECRET = "test_app_secret"
VERIFY_TOKEN = "sim-verify-token"
GUEST = "16505551234"


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    signature_ok: bool
    answered: int
    at: float


@dataclass
class Receiver:
    """A stand-in for webhook-ingest: checks X-Hub-Signature-256 over the raw bytes with hashlib/hmac
    (deliberately not eva_simulator.signing), answers 401 on a bad signature, else the next planned status."""

    app_secret: str
    url: str = ""
    received: list[Received] = field(default_factory=list)
    plan: deque[int] = field(default_factory=deque)
    default_status: int = 200

    def expected_signature(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    async def handle_post(self, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("x-hub-signature-256", "")
        ok = hmac.compare_digest(header, self.expected_signature(body))
        status = (self.plan.popleft() if self.plan else self.default_status) if ok else 401
        self.received.append(Received(body, dict(request.headers), ok, status, time.monotonic()))
        return Response(status_code=status)

    async def handle_get(self, request: Request) -> Response:
        params = request.query_params
        if "hub.challenge" not in params:
            return PlainTextResponse("missing", status_code=400)
        if params.get("hub.mode") != "subscribe" or params.get("hub.verify_token") != VERIFY_TOKEN:
            return PlainTextResponse("forbidden", status_code=403)
        return PlainTextResponse(params["hub.challenge"])

    def app(self) -> FastAPI:
        app = FastAPI()
        app.router.routes.append(Route("/webhooks/whatsapp", self.handle_post, methods=["POST"]))
        app.router.routes.append(Route("/webhooks/whatsapp", self.handle_get, methods=["GET"]))
        return app

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} deliveries, got {len(self.received)}")
            await asyncio.sleep(0.01)
        return self.received


def fast_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_max_attempts": 4,
        "webhook_initial_delay": 0.02,
        "webhook_backoff_factor": 2.0,
        "webhook_timeout": 2.0,
        "status_delays": [0.01, 0.01, 0.01],
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(app_secret=APP_SECRET)
    async with serve_in_background(receiver.app()) as server:
        receiver.url = f"{server.url}/webhooks/whatsapp"
        yield receiver


@pytest.fixture
def sim_app() -> FastAPI:
    return create_app(fast_settings())


@pytest.fixture
async def sim(sim_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the simulator app over ASGI (the webhooks it sends still go over real HTTP)."""
    transport = httpx.ASGITransport(app=sim_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://graph.test") as client:
        yield client
    await sim_app.state.simulator.aclose()


@pytest.fixture
async def sim_server() -> AsyncIterator[RunningServer]:
    """A simulator served by uvicorn on a free port."""
    async with serve_in_background(create_app(fast_settings())) as server:
        yield server


class Kit:
    """Constants and helpers for the tests (test modules cannot import each other in importlib mode)."""

    PNID = PNID
    WABA_ID = WABA_ID
    DISPLAY = DISPLAY
    TOKEN = TOKEN
    APP_SECRET = APP_SECRET
    VERIFY_TOKEN = VERIFY_TOKEN
    GUEST = GUEST

    @staticmethod
    async def register(client: httpx.AsyncClient, webhook_url: str | None = None, **overrides: Any) -> dict[str, Any]:
        body = {
            "phoneNumberId": PNID,
            "wabaId": WABA_ID,
            "displayPhoneNumber": DISPLAY,
            "accessToken": TOKEN,
            "appSecret": APP_SECRET,
            "webhookUrl": webhook_url,
            **overrides,
        }
        response = await client.post("/_sim/numbers", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def auth(token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def text_send(to: str = "+1 650-555-1234", body: str = "Hello from the hotel") -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }

    @staticmethod
    def settings(**overrides: Any) -> Settings:
        return fast_settings(**overrides)

    @staticmethod
    async def open_window(client: httpx.AsyncClient, wa_id: str = GUEST, **fields: Any) -> dict[str, Any]:
        response = await client.post("/_sim/windows", json={"phoneNumberId": PNID, "waId": wa_id, **fields})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def changes(received: list[Received], field: str | None = None) -> list[dict[str, Any]]:
        """Every change of every (correctly signed) delivery, optionally only those of one ``field``."""
        found: list[dict[str, Any]] = []
        for item in received:
            assert item.signature_ok
            for entry in json.loads(item.body)["entry"]:
                found.extend(change for change in entry["changes"] if field is None or change["field"] == field)
        return found

    @staticmethod
    def statuses(received: list[Received]) -> list[dict[str, Any]]:
        return [status for change in Kit.changes(received, "messages") for status in change["value"]["statuses"]]


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
