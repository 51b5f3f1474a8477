"""POST /api/messages passes the gateway's send admission: past its places and its wait a send is refused 503
OVERLOADED with Retry-After, and messaging is not called for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from eva.messaging.v1 import messaging_pb2
from eva_testing.tokens import TestTokenIssuer
from gateway.app import GatewayApp

CONVERSATION = "0192e0a0-0000-7000-8000-000000000001"


async def test_a_send_past_the_gateways_places_is_refused_overloaded_without_calling_messaging(
    build_gateway: Callable[..., GatewayApp], fake_clients: Any, issuer: TestTokenIssuer,
) -> None:
    gateway = build_gateway(send_admission_concurrency=1, send_admission_wait_seconds=0.05)
    release = asyncio.Event()
    answer = messaging_pb2.SendMessageResponse(message=messaging_pb2.Message(
        id="m1", conversation_id=CONVERSATION, direction="outbound", type="text", status="PENDING"))
    fake_clients.messaging.responses["SendMessage"] = answer
    plain_call = fake_clients.call

    async def slow_call(method: Any, request: Any, *, token: str | None) -> Any:
        await release.wait()  # messaging is busy with the first send
        return await plain_call(method, request, token=token)

    fake_clients.call = slow_call
    headers = {"Authorization": f"Bearer {issuer.user_token(user_id='u1', tenant_id='t1')}"}
    body = {"conversationId": CONVERSATION, "type": "text", "text": {"body": "Hola"}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.asgi), base_url="http://gw") as http:
        first = asyncio.create_task(http.post("/api/messages", json=body, headers=headers))
        await asyncio.sleep(0.05)
        refused = await http.post("/api/messages", json=body, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (503, "OVERLOADED")
        assert refused.headers["Retry-After"] == "1"
        release.set()
        assert (await first).status_code == 201
        again = await http.post("/api/messages", json=body, headers=headers)  # the place is free again
        assert again.status_code == 201
    assert [name for name, _ in fake_clients.messaging.requests] == ["SendMessage", "SendMessage"]
