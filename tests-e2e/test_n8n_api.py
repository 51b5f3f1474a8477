"""The /n8n API of n8n-integration on the whole stack: an API key made through the gateway, sends through the
outbound path reaching Meta (the simulator) — to a new phone number too —, idempotent retries (concurrent ones
included) giving one message, a revoked key refused, another tenant's conversation not found, the rate limit, the
template path, and the conversation read with its messages and changed through the conversation service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from e2e_support import StackUrls, create_api_key, new_wa_id
from outbound_support import Desk, opened_desk, problem, until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

N8N_SCOPES = ("conversations:read", "conversations:write", "messages:read", "messages:send")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def other_desk(stack: StackUrls) -> AsyncIterator[Desk]:
    async with opened_desk(stack) as opened:
        yield opened


async def new_key(desk: Desk, scopes: tuple[str, ...] = N8N_SCOPES) -> str:
    created = await create_api_key(desk.http, desk.stack, desk.hotel.access_token, scopes=scopes)
    return str(created["key"])


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def key(desk: Desk) -> str:
    return await new_key(desk)


def n8n(desk: Desk, method: str, path: str, api_key: str, *, idempotency_key: str | None = None,
        **kwargs: Any) -> Any:
    headers = {"X-Api-Key": api_key}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return desk.http.request(method, f"{desk.stack.n8n}/n8n{path}", headers=headers, **kwargs)


async def synced(desk: Desk) -> None:
    """The WABA's templates (hello_world at least) known to Eva."""
    assert (await desk.sync_templates())["fetched"] >= 1


SERVICE_LOG = Path(__file__).resolve().parent.parent / ".local" / "test" / "logs" / "n8n-integration.log"


def service_log() -> str:
    return SERVICE_LOG.read_text(errors="replace") if SERVICE_LOG.exists() else ""


HELLO = {"name": "hello_world", "language": {"code": "en_US"}}


async def test_a_template_to_a_new_phone_number_creates_the_guest_and_reaches_meta(desk: Desk, key: str) -> None:
    await synced(desk)
    wa_id = new_wa_id()
    response = await n8n(desk, "POST", "/message", key,
                         json={"to": f"+{wa_id}", "type": "template", "template": HELLO})
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["status"] == "PENDING" and message["direction"] == "outbound" and message["type"] == "template"
    assert message["sender"] == {"kind": "automation", "id": message["sender"]["id"], "name": "n8n"}
    assert message["sender"]["id"].startswith("apikey:")
    sent = await desk.sent_once(message["id"])
    assert sent["request"]["to"] == wa_id and sent["request"]["type"] == "template", sent
    assert sent["request"]["template"]["name"] == "hello_world"
    # the guest now exists: a contact with that number and a conversation the gateway shows
    conversation = await desk.conversation(message["conversationId"])
    assert conversation["contact"]["waId"] == wa_id and conversation["contact"]["phone"] == f"+{wa_id}"
    found = await n8n(desk, "GET", "/conversations", key, params={"phone": f"+{wa_id}"})
    assert found.status_code == 200 and [c["id"] for c in found.json()["items"]] == [message["conversationId"]]


async def test_free_form_text_outside_the_window_is_refused_with_messagings_code(desk: Desk, key: str) -> None:
    wa_id = new_wa_id()
    response = await n8n(desk, "POST", "/message", key,
                         json={"to": wa_id, "type": "text", "text": {"body": "Hello!"}})
    body = problem(response, 422, "WINDOW_CLOSED")
    assert "template" in body["detail"] and body["windowClosedAt"] is None
    bad = await n8n(desk, "POST", "/message", key, json={"to": "hello", "type": "text", "text": {"body": "x"}})
    problem(bad, 400, "RECIPIENT_INVALID")
    both = await n8n(desk, "POST", "/message", key, json={"to": wa_id, "conversationId": str(uuid.uuid4()),
                                                            "type": "text", "text": {"body": "x"}})
    problem(both, 400, "VALIDATION_FAILED")


async def test_the_template_path_maps_parameters_to_metas_components(desk: Desk, key: str) -> None:
    template = await desk.sim("POST", "/templates", json={
        "wabaId": desk.waba_id, "name": f"n8n_booking_{uuid.uuid4().hex[:8]}", "language": "en_US",
        "category": "UTILITY", "parameterFormat": "POSITIONAL",
        "components": [{"type": "BODY", "text": "Hello {{1}}, room {{2}} is ready.",
                        "example": {"body_text": [["Ana", "214"]]}}]})
    await synced(desk)
    wa_id = new_wa_id()
    response = await n8n(desk, "POST", "/template", key, json={
        "to": f"+{wa_id}", "name": template["name"], "language": "en_US", "parameters": ["Ana", "214"]})
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["status"] == "PENDING" and message["type"] == "template"
    sent = await desk.sent_once(message["id"])
    assert sent["request"]["to"] == wa_id
    assert sent["request"]["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "214"}]}]
    wrong = await n8n(desk, "POST", "/template", key, json={
        "to": f"+{wa_id}", "name": template["name"], "language": "en_US", "parameters": ["Ana"]})
    problem(wrong, 400, "TEMPLATE_PARAMS_MISMATCH")


async def test_retries_with_one_idempotency_key_give_one_message_even_concurrently(desk: Desk, key: str) -> None:
    guest = await desk.guest_writes("Is breakfast included?")
    body = {"conversationId": guest.conversation_id, "type": "text", "text": {"body": "Yes, from 7 to 10."}}
    idempotency_key = f"n8n-run-{uuid.uuid4()}"
    answers = await asyncio.gather(*(n8n(desk, "POST", "/message", key, idempotency_key=idempotency_key, json=body)
                                     for _ in range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1, ids
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
    message_id = ids.pop()
    later = await n8n(desk, "POST", "/message", key, idempotency_key=idempotency_key, json=body)
    assert later.status_code == 201 and later.json()["id"] == message_id
    assert later.headers["Idempotent-Replayed"] == "true"
    reused = await n8n(desk, "POST", "/message", key, idempotency_key=idempotency_key,
                       json={**body, "text": {"body": "Another answer"}})
    problem(reused, 422, "IDEMPOTENCY_KEY_REUSED")
    await desk.sent_once(message_id)  # Meta got it once
    await asyncio.sleep(2)
    outbound = [m for m in await desk.messages(guest.conversation_id) if m["direction"] == "outbound"]
    assert [m["id"] for m in outbound] == [message_id]
    assert len(await desk.sends_of(message_id)) == 1
    # another key of the same tenant has its own idempotency keys: the same key there is a new message
    other = await n8n(desk, "POST", "/message", await new_key(desk), idempotency_key=idempotency_key, json=body)
    assert other.status_code == 201 and other.json()["id"] != message_id


async def test_a_refused_send_is_replayed_under_its_key_and_not_sent(desk: Desk, key: str) -> None:
    idempotency_key = f"n8n-run-{uuid.uuid4()}"
    body = {"to": new_wa_id(), "type": "text", "text": {"body": "Hi"}}
    first = await n8n(desk, "POST", "/message", key, idempotency_key=idempotency_key, json=body)
    problem(first, 422, "WINDOW_CLOSED")
    again = await n8n(desk, "POST", "/message", key, idempotency_key=idempotency_key, json=body)
    problem(again, 422, "WINDOW_CLOSED")
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_unknown_missing_and_revoked_keys_are_refused(desk: Desk) -> None:
    path = f"/conversation/{uuid.uuid4()}"
    missing = await desk.http.get(f"{desk.stack.n8n}/n8n{path}")
    problem(missing, 401, "API_KEY_REQUIRED")
    problem(await n8n(desk, "GET", path, "eva_abcdefgh_" + "x" * 40), 401, "API_KEY_INVALID")
    created = await create_api_key(desk.http, desk.stack, desk.hotel.access_token, scopes=N8N_SCOPES)
    problem(await n8n(desk, "GET", path, created["key"]), 404, "CONVERSATION_NOT_FOUND")  # the key works
    revoked = await desk.http.delete(f"{desk.stack.gateway}/api/tenant/api-keys/{created['id']}",
                                     headers=desk.auth)
    assert revoked.status_code == 204, revoked.text
    refused = await n8n(desk, "GET", path, created["key"])  # its cached token too
    body = problem(refused, 401, "API_KEY_INVALID")
    assert created["key"] not in refused.text and created["key"] not in str(body)
    text = service_log()  # the stack's own log of the service: neither the key nor its secret part
    assert created["key"] not in text and created["key"].rsplit("_", 1)[-1] not in text


async def test_a_key_without_the_scope_is_403(desk: Desk) -> None:
    reader = await new_key(desk, ("conversations:read",))
    response = await n8n(desk, "POST", "/message", reader,
                         json={"conversationId": str(uuid.uuid4()), "type": "text", "text": {"body": "x"}})
    problem(response, 403, "SCOPE_MISSING")
    guest = await desk.guest_writes("Hello")
    messages = await n8n(desk, "GET", f"/conversation/{guest.conversation_id}", reader)
    problem(messages, 403, "SCOPE_MISSING")  # recent messages need messages:read
    alone = await n8n(desk, "GET", f"/conversation/{guest.conversation_id}", reader, params={"messages": 0})
    assert alone.status_code == 200 and alone.json()["messages"] == []


async def test_another_tenants_conversation_is_not_found(desk: Desk, other_desk: Desk, key: str) -> None:
    theirs = await other_desk.guest_writes("A guest of the other hotel")
    path = f"/conversation/{theirs.conversation_id}"
    problem(await n8n(desk, "GET", path, key), 404, "CONVERSATION_NOT_FOUND")
    sent = await n8n(desk, "POST", "/message", key,
                     json={"conversationId": theirs.conversation_id, "type": "text", "text": {"body": "x"}})
    problem(sent, 404, "CONVERSATION_NOT_FOUND")
    problem(await n8n(desk, "PATCH", path, key, json={"status": "resolved"}), 404, "CONVERSATION_NOT_FOUND")
    problem(await n8n(desk, "POST", f"{path}/tags/vip", key), 404, "CONVERSATION_NOT_FOUND")
    assert (await other_desk.conversation(theirs.conversation_id))["status"] == "open"
    assert [m["direction"] for m in await other_desk.messages(theirs.conversation_id)] == ["inbound"]


async def test_the_conversation_is_read_with_its_messages_and_changed(desk: Desk, key: str) -> None:
    guest = await desk.guest_writes("Can I check in early?")
    answer = await n8n(desk, "POST", "/message", key, json={
        "conversationId": guest.conversation_id, "type": "text", "text": {"body": "Yes, from 11:00."}})
    assert answer.status_code == 201, answer.text
    await desk.sent_once(answer.json()["id"])
    read = await n8n(desk, "GET", f"/conversation/{guest.conversation_id}", key, params={"messages": 5})
    assert read.status_code == 200, read.text
    view = read.json()
    assert view["id"] == guest.conversation_id and view["status"] == "open" and view["assignedTo"] is None
    assert view["contact"]["waId"] == guest.wa_id and view["window"]["open"] is True
    assert view["window"]["expiresAt"] == view["windowExpiresAt"]
    assert [(m["direction"], m["content"].get("body")) for m in view["messages"]] == [
        ("inbound", "Can I check in early?"), ("outbound", "Yes, from 11:00.")]
    one = await n8n(desk, "GET", f"/conversation/{guest.conversation_id}", key, params={"messages": 1})
    assert [m["content"]["body"] for m in one.json()["messages"]] == ["Yes, from 11:00."]  # the most recent

    tagged = await n8n(desk, "POST", f"/conversation/{guest.conversation_id}/tags/early-checkin", key,
                       idempotency_key=str(uuid.uuid4()))
    assert tagged.status_code == 200 and [t["name"] for t in tagged.json()["tags"]] == ["early-checkin"]
    untagged = await n8n(desk, "DELETE", f"/conversation/{guest.conversation_id}/tags/EARLY-CHECKIN", key)
    assert untagged.status_code == 200 and untagged.json()["tags"] == []
    problem(await n8n(desk, "DELETE", f"/conversation/{guest.conversation_id}/tags/nope", key), 404,
            "TAG_NOT_FOUND")

    admin_id = desk.hotel.user["id"]
    assigned = await n8n(desk, "POST", f"/conversation/{guest.conversation_id}/assign", key,
                         json={"attendantId": admin_id})
    assert assigned.status_code == 200 and assigned.json()["assignedTo"] == admin_id
    assert (await desk.conversation(guest.conversation_id))["assignedTo"] == admin_id
    unassigned = await n8n(desk, "POST", f"/conversation/{guest.conversation_id}/assign", key,
                           json={"attendantId": None})
    assert unassigned.status_code == 200 and unassigned.json()["assignedTo"] is None

    escalation_key = str(uuid.uuid4())
    raised = [await n8n(desk, "POST", f"/conversation/{guest.conversation_id}/escalations", key,
                        idempotency_key=escalation_key, json={"reason": "Guest asks for a manager",
                                                              "priority": "high"}) for _ in range(2)]
    assert [r.status_code for r in raised] == [201, 201] and raised[0].json() == raised[1].json()
    assert raised[0].json()["status"] == "open" and raised[0].json()["priority"] == "high"
    listed = await desk.http.get(f"{desk.stack.gateway}/api/escalations", headers=desk.auth,
                                 params={"conversationId": guest.conversation_id})
    assert [e["id"] for e in listed.json()["items"]] == [raised[0].json()["id"]]

    resolved = await n8n(desk, "PATCH", f"/conversation/{guest.conversation_id}", key, json={"status": "resolved"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert (await desk.conversation(guest.conversation_id))["status"] == "resolved"


async def test_a_flow_that_polls_reads_the_tenants_events_after_a_seq(desk: Desk, other_desk: Desk, key: str) -> None:
    """GET /n8n/events?afterSeq=: the hotel's public events (no subscription needed) in seq order, the same envelopes
    webhooks carry; a page continues after its last seq; another hotel's events never show; both read scopes."""
    start = (await n8n(desk, "GET", "/events", key, params={"afterSeq": 0, "limit": 1})).json()
    after = start["newestSeq"] or 0
    guest = await desk.guest_writes("Can I book a table for tonight?")
    theirs = await other_desk.guest_writes("A guest of the other hotel")

    async def arrived() -> list[dict[str, Any]]:
        page = (await n8n(desk, "GET", "/events", key, params={"afterSeq": after})).json()
        return [item for item in page["items"]
                if item["type"] == "message.received" and item["data"].get("wamid") == guest.wamid]

    [event] = await until(arrived)
    assert event["seq"] > after and event["tenantId"] == desk.hotel.tenant["id"]
    assert event["data"]["conversationId"] == guest.conversation_id and event["data"]["direction"] == "inbound"
    page = (await n8n(desk, "GET", "/events", key, params={"afterSeq": after})).json()
    seqs = [item["seq"] for item in page["items"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and page["nextAfterSeq"] == seqs[-1]
    assert all(item["data"].get("wamid") != theirs.wamid for item in page["items"])
    # the hotel's earlier traffic (a READ from a previous test's message) may still be arriving: what a page after the
    # newest seq holds is only ever newer, and an empty page keeps the cursor where it was
    later = (await n8n(desk, "GET", "/events", key, params={"afterSeq": page["newestSeq"]})).json()
    assert all(item["seq"] > page["newestSeq"] for item in later["items"])
    assert later["nextAfterSeq"] == (later["items"][-1]["seq"] if later["items"] else page["newestSeq"])
    beyond = (await n8n(desk, "GET", "/events", key, params={"afterSeq": later["newestSeq"] + 10**9})).json()
    assert beyond["items"] == [] and beyond["nextAfterSeq"] == later["newestSeq"] + 10**9
    reader = await new_key(desk, ("conversations:read",))
    problem(await n8n(desk, "GET", "/events", reader), 403, "SCOPE_MISSING")


async def test_the_rate_limit_per_key_answers_429_with_retry_after(desk: Desk) -> None:
    limited = await new_key(desk, ("usage:read",))  # every call is refused 403, but counted first
    other = await new_key(desk)
    path = f"/conversation/{uuid.uuid4()}"

    async def call(api_key: str) -> httpx.Response:
        response: httpx.Response = await n8n(desk, "GET", path, api_key)
        return response

    statuses: list[int] = []
    for _ in range(40):
        batch = await asyncio.gather(*(call(limited) for _ in range(10)))
        statuses.extend(r.status_code for r in batch)
        if 429 in statuses:
            refused = next(r for r in batch if r.status_code == 429)
            break
    else:
        pytest.fail(f"no 429 after {len(statuses)} calls")
    body = problem(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and body["status"] == 429
    assert statuses.count(403) >= 100  # the limit (300 a minute by default) let the first ones through
    # another key of the same tenant is not limited by it
    problem(await call(other), 404, "CONVERSATION_NOT_FOUND")


async def test_the_openapi_document_is_served(desk: Desk) -> None:
    document = (await desk.http.get(f"{desk.stack.n8n}/n8n/openapi.json")).json()
    assert {"/n8n/message", "/n8n/template", "/n8n/conversation/{conversation_id}", "/n8n/conversations"} <= set(
        document["paths"])
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "X-Api-Key"
    for path in ("/n8n/message", "/n8n/template", "/n8n/conversation/{conversation_id}/escalations"):
        names = [parameter["name"] for parameter in document["paths"][path]["post"]["parameters"]]
        assert "Idempotency-Key" in names, (path, names)
    page = await desk.http.get(f"{desk.stack.n8n}/n8n/docs")
    assert page.status_code == 200 and "/n8n/openapi.json" in page.text
