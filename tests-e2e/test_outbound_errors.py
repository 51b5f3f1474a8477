"""Each class of outbound error through the public gateway on the whole stack: Meta's limits refused before Meta is
called; the 24-hour window (Eva's refused at once, Meta's failing afterwards); Meta's retryable and permanent errors;
the retry endpoint; an expired access token and its renewal; a guest known only by a business-scoped user id; a
suspended hotel; API keys with and without `messages:send`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from e2e_support import StackUrls, bearer, create_api_key, login, new_bsuid
from outbound_support import Desk, now, opened_desk, problem, request_of, statuses_of, until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

DAY = 24 * 3600


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_metas_limits_are_refused_before_meta_is_called(stack: StackUrls) -> None:
    async with opened_desk(stack) as desk:
        guest = await desk.guest_writes("Can you send me the menu?")
        refused = {
            "TEXT_TOO_LONG": ("text", {"body": "a" * 4097}),
            "TOO_MANY_BUTTONS": ("interactive", {
                "type": "button", "body": {"text": "Pick one"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": f"b{n}", "title": f"Option {n}"}}
                                       for n in range(4)]}}),
            "CAPTION_TOO_LONG": ("image", {"link": "https://hotel-eva.test/menu.jpg", "caption": "c" * 1025}),
            "BUTTON_TITLE_TOO_LONG": ("interactive", {
                "type": "button", "body": {"text": "Pick one"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "b", "title": "t" * 21}}]}}),
            "MEDIA_SOURCE_REQUIRED": ("image", {"caption": "no media"}),
        }
        for code, (kind, content) in refused.items():
            body = problem(await desk.send(guest.conversation_id, kind, content), 400, code)
            assert body["detail"], body
        accepted = await desk.accepted(guest.conversation_id, "text", {"body": "a" * 4096})  # the limit itself
        await desk.status_event(accepted["id"], "SENT")
        sent = await desk.sent()
        assert [item["request"]["biz_opaque_callback_data"] for item in sent] == [f"eva:{accepted['id']}"]
        assert (await desk.throughput())["received"] == 1  # nothing else reached Meta
        outbound = [m for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"]
        assert [m["id"] for m in outbound] == [accepted["id"]]  # the refused ones were never stored


async def test_a_closed_window_refuses_free_form_at_once_and_a_template_goes_through(desk: Desk) -> None:
    wrote = now() - DAY - 3600  # the guest last wrote 25 hours ago
    guest = await desk.guest_writes("I left my charger in room 12", timestamp=wrote)
    conversation = await desk.conversation(guest.conversation_id)
    assert instant(conversation["windowExpiresAt"]).timestamp() == wrote + DAY, conversation

    body = problem(await desk.send(guest.conversation_id, "text", {"body": "We found it!"}), 422, "WINDOW_CLOSED")
    assert instant(body["windowClosedAt"]) == instant(conversation["windowExpiresAt"]), body
    assert "template" in body["detail"], body

    async def hello_world_synced() -> bool:
        return any(t["name"] == "hello_world" for t in await desk.templates())

    await until(hello_world_synced)
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    message = await desk.accepted(guest.conversation_id, "template", template)
    await desk.status_event(message["id"], "READ")
    received = await desk.sent_once(message["id"])
    assert received["windowOpen"] is False and received["asyncFailure"] is None, received
    assert received["request"] == request_of(message["id"], {"to": str(guest.wa_id)}, "template", template)
    assert [m["id"] for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"] == \
        [message["id"]]


async def test_a_retryable_meta_error_is_retried_and_the_message_is_sent(desk: Desk) -> None:
    guest = await desk.guest_writes("Is breakfast included?")
    await desk.fault(code=131000, times=1)
    message = await desk.accepted(guest.conversation_id, "text", {"body": "Yes, from 7 to 11."})
    await desk.status_event(message["id"], "READ")
    shown = await desk.message(guest.conversation_id, message["id"])
    assert shown["attempts"] == 2 and shown["status"] == "READ" and shown["errors"] is None, shown
    assert statuses_of(shown) == ["SENT", "DELIVERED", "READ"]
    await desk.sent_once(message["id"])  # the refused attempt was not a send


async def test_a_permanent_meta_error_fails_the_message_and_a_retry_sends_the_same_message(desk: Desk) -> None:
    guest = await desk.guest_writes("Please confirm my booking")
    await desk.fault(code=131026, times=1)
    message = await desk.accepted(guest.conversation_id, "text", {"body": "Your booking is confirmed."})
    failed = await desk.status_event(message["id"], "FAILED")
    [error] = failed["error"]
    assert error["code"] == 131026 and error["title"] == "Message Undeliverable", failed
    shown = await desk.message(guest.conversation_id, message["id"])
    assert shown["status"] == "FAILED" and shown["attempts"] == 1, shown
    assert [(e["code"], e["title"]) for e in shown["errors"]] == [(131026, "Message Undeliverable")], shown
    assert await desk.sends_of(message["id"]) == []

    retried = await desk.http.post(f"{desk.stack.gateway}/api/messages/{message['id']}/retry", headers=desk.auth)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == message["id"] and retried.json()["status"] == "PENDING", retried.json()
    await desk.status_event(message["id"], "READ")
    received = await desk.sent_once(message["id"])
    assert received["request"]["text"] == {"body": "Your booking is confirmed."}
    shown = await desk.message(guest.conversation_id, message["id"])
    assert shown["status"] == "READ" and shown["wamid"] == received["wamid"] and shown["errors"] is None, shown
    assert [m["id"] for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"] == \
        [message["id"]]  # the same message, never a copy
    again = await desk.http.post(f"{desk.stack.gateway}/api/messages/{message['id']}/retry", headers=desk.auth)
    problem(again, 422, "MESSAGE_NOT_FAILED")


async def test_metas_own_window_failing_the_send_afterwards_fails_it_with_the_template_hint(desk: Desk) -> None:
    guest = await desk.guest_writes("Hello?")
    closed = await desk.sim("POST", "/windows", json={"phoneNumberId": desk.number, "waId": guest.wa_id,
                                                      "at": now() - DAY - 60})
    assert closed["open"] is False, closed
    message = await desk.accepted(guest.conversation_id, "text", {"body": "Hello! How can we help?"})
    failed = await desk.status_event(message["id"], "FAILED")
    assert [e["code"] for e in failed["error"]] == [131047], failed
    shown = await desk.message(guest.conversation_id, message["id"], lambda m: m["status"] == "FAILED")
    [error] = shown["errors"]
    assert error["code"] == 131047 and "template" in error["hint"], error
    assert statuses_of(shown)[-1] == "FAILED"
    received = await desk.sent_once(message["id"])  # Meta accepted it, then failed it
    assert received["asyncFailure"] == 131047


async def test_an_expired_token_fails_the_send_marks_the_number_unhealthy_and_a_new_token_heals_it(
    stack: StackUrls,
) -> None:
    async with opened_desk(stack) as desk:
        guest = await desk.guest_writes("Do you have parking?")
        assert (await desk.whatsapp())["health"]["status"] == "healthy"
        await desk.sim("POST", f"/numbers/{desk.number}/expire-token")
        message = await desk.accepted(guest.conversation_id, "text", {"body": "Yes, underground."})
        failed = await desk.status_event(message["id"], "FAILED")
        assert [e["code"] for e in failed["error"]] == [190], failed
        shown = await desk.message(guest.conversation_id, message["id"])
        assert shown["status"] == "FAILED" and shown["errors"][0]["code"] == 190, shown
        health = (await until(lambda: _unhealthy(desk)))["health"]
        assert health["code"] == 190, health

        token = "EAA" + desk.hotel.access_token_wa[3:][::-1]
        await desk.sim("POST", "/numbers", json={"phoneNumberId": desk.number, "accessToken": token})
        desk.hotel.access_token_wa = token
        view = await desk.put_whatsapp(accessToken=token)
        assert view["health"]["status"] == "healthy", view
        assert (await desk.whatsapp())["health"]["status"] == "healthy"
        healed = await desk.accepted(guest.conversation_id, "text", {"body": "Yes, underground (again)."})
        await desk.status_event(healed["id"], "READ")
        await desk.sent_once(healed["id"])


async def _unhealthy(desk: Desk) -> dict[str, Any] | None:
    view = await desk.whatsapp()
    return view if view["health"] and view["health"]["status"] == "unhealthy" else None


async def test_a_guest_known_only_by_a_business_scoped_user_id_is_answered_through_recipient(desk: Desk) -> None:
    bsuid = new_bsuid()
    guest = await desk.guest_writes("Hi, I'm a username-only user", user_id=bsuid)
    message = await desk.accepted(guest.conversation_id, "text", {"body": "Welcome!"})
    await desk.status_event(message["id"], "READ")
    received = await desk.sent_once(message["id"])
    assert received["request"] == request_of(message["id"], {"recipient": bsuid}, "text", {"body": "Welcome!"})
    assert received["userId"] == bsuid and received["waId"] is None, received


async def test_a_suspended_hotel_cannot_send(stack: StackUrls) -> None:
    async with opened_desk(stack) as desk:
        guest = await desk.guest_writes("Are you open?")
        response = await login(desk.http, stack, stack.super_admin_email, stack.super_admin_password,
                               tenant_slug="platform")
        assert response.status_code == 200 and response.json()["user"]["role"] == "super_admin", response.text
        admin = bearer(response.json()["accessToken"])
        tenant = desk.hotel.tenant["id"]
        suspended = await desk.http.post(f"{stack.gateway}/api/tenants/{tenant}/suspend", headers=admin)
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
        try:
            problem(await desk.send(guest.conversation_id, "text", {"body": "Yes!"}), 403, "TENANT_SUSPENDED")
            assert await desk.sent() == []
        finally:
            back = await desk.http.post(f"{stack.gateway}/api/tenants/{tenant}/reactivate", headers=admin)
            assert back.status_code == 200, back.text


async def test_an_api_key_sends_with_messages_send_and_not_without(desk: Desk) -> None:
    guest = await desk.guest_writes("Can your system answer me?")
    sender = await create_api_key(desk.http, desk.stack, desk.hotel.access_token, ("messages:send",))
    reader = await create_api_key(desk.http, desk.stack, desk.hotel.access_token, ("messages:read",))
    message = await desk.accepted(guest.conversation_id, "text", {"body": "Automated hello"},
                                  headers={"X-Api-Key": sender["key"]})
    assert message["sender"]["kind"] == "api_key", message
    await desk.status_event(message["id"], "SENT")
    await desk.sent_once(message["id"])
    refused = await desk.send(guest.conversation_id, "text", {"body": "Not allowed"},
                              headers={"X-Api-Key": reader["key"]})
    problem(refused, 403, "SCOPE_MISSING")
    assert [m["id"] for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"] == \
        [message["id"]]
