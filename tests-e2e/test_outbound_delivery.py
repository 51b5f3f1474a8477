"""Delivery guarantees through the public gateway on the whole stack: a request repeated with one Idempotency-Key
(even at the same moment) is one message and one send; the messages of a conversation reach Meta in the order they
were written even when the first one needs Meta's retries; a coexistence echo (the hotel wrote from the WhatsApp
Business app) shows in the inbox as the business app's outbound message without touching the window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from e2e_support import StackUrls
from outbound_support import Desk, opened_desk, problem

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


async def test_one_idempotency_key_sent_eight_times_at_once_is_one_message_and_one_send(desk: Desk) -> None:
    guest = await desk.guest_writes("Can I bring my dog?")
    key = f"reply-{uuid.uuid4()}"
    content = {"body": "Yes, dogs are welcome 🐕"}
    answers = await asyncio.gather(*(desk.send(guest.conversation_id, "text", content, key=key) for _ in range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1, ids
    [message_id] = ids
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert replayed.count("true") == 7 and replayed.count(None) == 1, replayed
    await desk.status_event(message_id, "READ")
    await desk.sent_once(message_id)
    assert len(await desk.sent()) == 1
    assert [m["id"] for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"] == \
        [message_id]

    again = await desk.send(guest.conversation_id, "text", content, key=key)
    assert again.status_code == 201 and again.json()["id"] == message_id, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await desk.send(guest.conversation_id, "text", {"body": "Sorry, no dogs"}, key=key)
    problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert len(await desk.sent()) == 1


async def test_messages_reach_meta_in_order_while_the_first_is_retried(desk: Desk) -> None:
    guest = await desk.guest_writes("What's the plan for tomorrow?")
    await desk.fault(code=131016, times=2)
    texts = [f"Step {n} of the plan" for n in range(1, 6)]
    created = [await desk.accepted(guest.conversation_id, "text", {"body": text}) for text in texts]
    for message in created:
        await desk.status_event(message["id"], "SENT")
    received = [item for item in await desk.sent() if item["request"]["biz_opaque_callback_data"]
                in {f"eva:{m['id']}" for m in created}]
    assert [item["request"]["text"]["body"] for item in received] == texts
    assert [item["request"]["biz_opaque_callback_data"] for item in received] == [f"eva:{m['id']}" for m in created]
    shown = {m["id"]: m for m in await desk.messages(guest.conversation_id)}
    assert [shown[m["id"]]["attempts"] for m in created] == [3, 1, 1, 1, 1]


async def test_an_echo_from_the_business_app_shows_as_its_outbound_message_and_leaves_the_window(desk: Desk) -> None:
    guest = await desk.guest_writes("Did you get my deposit?")
    before = await desk.conversation(guest.conversation_id)
    echo = await desk.sim("POST", "/echoes", json={"phoneNumberId": desk.number, "to": guest.wa_id,
                                                   "text": "Yes, received — answered from the phone"})
    assert echo["delivered"] is True, echo
    event = await desk.socket.wait_for("message:new", lambda data: data.get("wamid") == echo["wamid"])
    assert event["source"] == "business_app" and event["direction"] == "outbound", event
    assert event["conversationId"] == guest.conversation_id and event["sender"]["kind"] == "business_app"
    assert event["content"] == {"body": "Yes, received — answered from the phone"}, event
    [shown] = [m for m in await desk.messages(guest.conversation_id) if m["wamid"] == echo["wamid"]]
    assert shown["source"] == "business_app" and shown["direction"] == "outbound" and shown["status"] == "SENT"
    after = await desk.conversation(guest.conversation_id)
    assert after["windowExpiresAt"] == before["windowExpiresAt"]
    assert after["lastInboundAt"] == before["lastInboundAt"]
    assert not any(item["wamid"] == echo["wamid"] for item in await desk.sent())  # nothing went through Meta's API
