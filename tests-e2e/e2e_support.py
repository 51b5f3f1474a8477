"""Helpers of the end-to-end tests: the stack's URLs, hotels registered through the public API, and a recording
Socket.io client."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import socketio


@dataclass(frozen=True)
class StackUrls:
    gateway: str
    gateway_replica: str
    ingest: str
    simulator: str
    platform_verify_token: str


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


async def register_hotel(http: httpx.AsyncClient, stack: StackUrls, *, configure_whatsapp: bool = True) -> Hotel:
    email = f"admin-{uuid.uuid4().hex[:8]}@hotel.test"
    password = "correct horse battery staple"
    response = await http.post(f"{stack.gateway}/auth/register", json={
        "tenantName": f"Hotel {uuid.uuid4().hex[:6]}", "name": "Front Desk Admin", "email": email,
        "password": password})
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

