"""Real n8n (the npm package, pinned and installed by scripts/n8n_server.py) runs the example workflows of
deploy/n8n/workflows against the whole stack and the simulator, imported and activated with n8n's own CLI:

- a guest's first message reaches n8n as Eva's signed webhook (the workflow's Code node checks `X-Eva-Signature`),
  n8n answers the guest through `POST /n8n/message` (the answer reaches Meta, the simulator) and hands the
  conversation to a person (`POST /n8n/conversation/{id}/assign`); the guest's next message is not answered again;
- a forged delivery (signed with another secret) is refused by the workflow's check: nothing is sent;
- a booking posted to n8n's own webhook sends the guest a template through `POST /n8n/template`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from e2e_support import StackUrls, create_api_key, create_user, new_wa_id
from eva_testing.scripts import load_script
from eva_testing.waiting import eventually
from outbound_support import Desk, opened_desk

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "deploy" / "n8n" / "workflows"
WELCOME = "Welcome! A member of our team will be with you in a moment."
N8N_SCOPES = ("conversations:read", "conversations:write", "messages:read", "messages:send")


@contextlib.asynccontextmanager
async def n8n_running(workflows: list[Path], env: dict[str, str]) -> AsyncIterator[Any]:
    """n8n with the workflows active; started and stopped off the event loop (its start takes seconds)."""
    server = load_script("n8n_server")
    await asyncio.to_thread(server.install)
    manager: contextlib.AbstractContextManager[Any] = server.running(workflows=workflows, env=env)
    n8n = await asyncio.to_thread(manager.__enter__)
    try:
        yield n8n
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def hotel_n8n(desk: Desk) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """The hotel's n8n, wired as docs/n8n.md says: an API key for it, the attendant it hands guests to, the webhook
    secret it checks, the booking template (approved at Meta, synced); both example workflows active."""
    await desk.sim("POST", "/templates", json={
        "wabaId": desk.waba_id, "name": "booking_confirmation", "language": "en_US", "category": "UTILITY",
        "parameterFormat": "POSITIONAL",
        "components": [{"type": "BODY", "text": "Dear {{1}}, your stay from {{2}} is confirmed.",
                        "example": {"body_text": [["Ana", "12 Dec"]]}}]})
    assert (await desk.sync_templates())["fetched"] >= 2
    key = (await create_api_key(desk.http, desk.stack, desk.hotel.access_token, scopes=N8N_SCOPES))["key"]
    attendant = await create_user(desk.http, desk.stack, desk.hotel.access_token, log_in=False)
    env = {"EVA_N8N_URL": desk.stack.n8n, "EVA_API_KEY": key, "EVA_WEBHOOK_SECRET": secrets.token_hex(32),
           "EVA_HANDOVER_ATTENDANT_ID": attendant.user["id"], "EVA_WELCOME_TEXT": WELCOME}
    async with n8n_running([WORKFLOWS / "guest-welcome-handover.json", WORKFLOWS / "booking-template.json"],
                           env) as n8n:
        yield n8n, env


async def texts_to(desk: Desk, wa_id: str) -> list[dict[str, Any]]:
    return [item for item in await desk.sent()
            if item["request"].get("to") == wa_id and item["request"].get("type") == "text"]


async def deliveries(desk: Desk, subscription_id: str) -> list[dict[str, Any]]:
    response = await desk.http.get(f"{desk.stack.gateway}/api/webhooks/deliveries", headers=desk.auth,
                                   params={"subscriptionId": subscription_id, "limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_the_welcome_workflow_answers_a_guests_first_message_and_hands_the_conversation_to_a_person(
    desk: Desk, hotel_n8n: tuple[Any, dict[str, str]]
) -> None:
    n8n, env = hotel_n8n
    created = await desk.http.post(f"{desk.stack.gateway}/api/webhooks", headers=desk.auth, json={
        "url": n8n.webhook_url("eva-guest"), "events": ["message.received"], "secret": env["EVA_WEBHOOK_SECRET"]})
    assert created.status_code == 201, created.text
    subscription = created.json()["id"]

    guest = await desk.guest_writes("Hello! Is an early check-in possible?")

    async def welcomed() -> list[dict[str, Any]]:
        return await texts_to(desk, str(guest.wa_id))

    [sent] = await eventually(welcomed, timeout=60.0, interval=0.25)
    assert sent["request"]["text"]["body"] == WELCOME

    async def handed_over() -> dict[str, Any] | None:
        conversation = await desk.conversation(guest.conversation_id)
        return conversation if conversation.get("assignedTo") == env["EVA_HANDOVER_ATTENDANT_ID"] else None

    await eventually(handed_over, timeout=30.0, interval=0.25)
    answers = [message for message in await desk.messages(guest.conversation_id) if message["direction"] == "outbound"]
    assert [(m["type"], m["sender"]["kind"]) for m in answers] == [("text", "automation")]

    # the guest writes again: n8n gets it (delivered, signature checked) but the conversation is taken, so no
    # second welcome
    await desk.guest_writes("And is there parking?", wa_id=guest.wa_id)

    async def both_delivered() -> list[dict[str, Any]] | None:
        items = await deliveries(desk, subscription)
        return items if len(items) == 2 and all(item["state"] == "delivered" for item in items) else None

    await eventually(both_delivered, timeout=60.0, interval=0.25)
    await asyncio.sleep(2.0)  # what the workflow would send, it sends within its execution: give it the time
    assert len(await texts_to(desk, str(guest.wa_id))) == 1


async def test_a_forged_delivery_is_refused_by_the_workflows_signature_check(
    desk: Desk, hotel_n8n: tuple[Any, dict[str, str]]
) -> None:
    """An event posted to n8n with a signature made with another secret: the Code node throws, nothing is sent to
    the guest; the same body signed with the hotel's secret is welcomed (the check is what refused it)."""
    n8n, env = hotel_n8n
    listed = await desk.http.get(f"{desk.stack.gateway}/api/webhooks", headers=desk.auth)
    for item in listed.json()["items"]:  # Eva itself sends nothing to n8n during this test
        assert (await desk.http.delete(f"{desk.stack.gateway}/api/webhooks/{item['id']}",
                                       headers=desk.auth)).status_code == 204
    wa_id = new_wa_id()
    guest = await desk.guest_writes("Hi there", wa_id=wa_id)
    body = ('{"id":"evt-' + secrets.token_hex(6) + '","type":"message.received","tenantId":"'
            + str(desk.hotel.tenant["id"]) + '","occurredAt":"2026-12-07T00:00:00Z","seq":1,'
            + '"data":{"direction":"inbound","conversationId":"' + guest.conversation_id + '"}}')

    async def post(secret: bytes) -> None:
        stamp = str(int(time.time()))
        signature = hmac.new(secret, f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
        response = await desk.http.post(n8n.webhook_url("eva-guest"), content=body, headers={
            "Content-Type": "application/json", "X-Eva-Signature": f"t={stamp},v1={signature}"})
        assert response.status_code == 200, response.text  # n8n answers on receipt; the execution runs after

    await post(b"not the hotel's secret")
    await asyncio.sleep(3.0)  # what the workflow would send, it sends within a second or two
    assert await texts_to(desk, wa_id) == []

    await post(env["EVA_WEBHOOK_SECRET"].encode())

    async def welcomed() -> list[dict[str, Any]]:
        return await texts_to(desk, wa_id)

    [sent] = await eventually(welcomed, timeout=60.0, interval=0.25)
    assert sent["request"]["text"]["body"] == WELCOME


async def test_the_booking_workflow_sends_the_guest_a_template(
    desk: Desk, hotel_n8n: tuple[Any, dict[str, str]]
) -> None:
    n8n, _ = hotel_n8n
    wa_id = new_wa_id()
    response = await desk.http.post(n8n.webhook_url("booking"), json={
        "bookingId": f"B-{secrets.token_hex(4)}", "phone": f"+{wa_id}", "guestName": "Inês", "checkIn": "12 Dec"},
        timeout=60.0)
    assert response.status_code == 200, response.text

    async def templated() -> list[dict[str, Any]]:
        return [item for item in await desk.sent()
                if item["request"].get("to") == wa_id and item["request"].get("type") == "template"]

    [sent] = await eventually(templated, timeout=60.0, interval=0.25)
    assert sent["request"]["template"]["name"] == "booking_confirmation"
    assert sent["request"]["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Inês"}, {"type": "text", "text": "12 Dec"}]}]
