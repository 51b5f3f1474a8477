"""Statuses with their own timestamps (status_history), forward only whatever the arrival order, FAILED yielding to
a later READ, parked statuses applied when their message is stored, the pricing category, every inbound type typed
through the API, and messages ordered by Meta's timestamp however they arrived."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from eva.messaging.v1 import messaging_pb2
from eva_common.db import transaction
from eva_events.messaging import MESSAGE_CREATED
from messaging_service.message_store import store_message
from messaging_service.models import OUTBOUND, Message

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def status_payload(wamid: str, status: str, timestamp: str, *, category: str | None = None,
                   errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": timestamp, "recipient_id": "16505551234"}
    if category:
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}
    if errors:
        item["errors"] = errors
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"},
        "statuses": [item]}}]}]}


async def as_tenant(owner_db, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def store_outbound(stack, tenant: str, wamid: str, status: str = "PENDING") -> Message:
    """An outbound message stored the way the sender stores its own (message_store.store_message)."""
    async with transaction(stack.messaging.sessions, tenant_id=tenant) as session:
        stored = await store_message(session, Message(
            tenant_id=tenant, conversation_id=uuid.uuid4(), contact_id=uuid.uuid4(), wamid=wamid,
            direction=OUTBOUND, type="text", status=status, content={"body": "Your room is ready"},
            sent_at=datetime.now(UTC)), event_type=MESSAGE_CREATED, events_topic=stack.events_topic)
    assert stored is not None
    return stored


async def status_events(owner_db, tenant: str, wamid: str) -> list[dict[str, Any]]:
    rows = await as_tenant(owner_db, tenant, "SELECT payload FROM outbox WHERE headers->>'event-type' = "
                                             "'message.status_changed' AND position($1::bytea IN payload) > 0 "
                                             "ORDER BY id", wamid.encode())
    return [json.loads(bytes(row["payload"]))["data"] for row in rows]


async def test_out_of_order_statuses_keep_their_own_timestamps_and_only_move_forward(
        stack, delivery, issuer, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.OUT{uuid.uuid4().hex}"
    message = await store_outbound(stack, tenant, wamid, status="SENT")
    for status, timestamp in (("read", "1750030090"), ("sent", "1750030073"), ("delivered", "1750030080")):
        await stack.messaging.processor.process(delivery(
            status_payload(wamid, status, timestamp, category="utility"), tenant_id=tenant))
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(message.id)),
                                      metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant)))
    assert got.status == "READ"  # a late delivered never undoes read
    assert [(h.status, h.occurred_at) for h in got.status_history] == [
        ("SENT", "2025-06-15T23:27:53.000Z"), ("DELIVERED", "2025-06-15T23:28:00.000Z"),
        ("READ", "2025-06-15T23:28:10.000Z")]
    assert got.pricing_category == "utility"
    events = await status_events(owner_db, tenant, wamid)
    assert [(e["status"], e["category"]) for e in events] == [("READ", "utility")]


async def test_failed_keeps_metas_error_then_yields_to_a_later_read(stack, delivery, issuer, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.OUT{uuid.uuid4().hex}"
    message = await store_outbound(stack, tenant, wamid, status="SENT")
    failed = copy.deepcopy(fixture("status_failed"))
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    await stack.messaging.processor.process(delivery(failed, tenant_id=tenant))
    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(message.id)), metadata=user)
    [error] = json.loads(got.error_json)
    assert got.status == "FAILED" and error["code"] == 131049 and error["title"] and error["error_data"]["details"]
    await stack.messaging.processor.process(delivery(status_payload(wamid, "read", "1751142999"), tenant_id=tenant))
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(message.id)), metadata=user)
    assert got.status == "READ" and got.error_json == ""
    assert [h.status for h in got.status_history] == ["FAILED", "READ"]
    assert json.loads(got.status_history[0].error_json)[0]["code"] == 131049
    assert [e["status"] for e in await status_events(owner_db, tenant, wamid)] == ["FAILED", "READ"]


async def test_statuses_parked_before_the_message_are_applied_in_timestamp_order_when_it_is_stored(
        stack, delivery, issuer, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.OUT{uuid.uuid4().hex}"
    for status, timestamp in (("delivered", "1750030080"), ("sent", "1750030073")):  # Meta beat our own record
        outcome = await stack.messaging.processor.process(delivery(
            status_payload(wamid, status, timestamp, category="marketing"), tenant_id=tenant))
        assert outcome is not None and outcome.detail == "status_parked=1"
    message = await store_outbound(stack, tenant, wamid)
    assert (message.status, message.pricing_category) == ("DELIVERED", "marketing")
    assert await as_tenant(owner_db, tenant, "SELECT 1 FROM parked_statuses WHERE wamid = $1", wamid) == []
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(message.id)),
                                      metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant)))
    assert [h.status for h in got.status_history] == ["SENT", "DELIVERED"] and got.status == "DELIVERED"
    events = await status_events(owner_db, tenant, wamid)
    assert [(e["status"], e["category"]) for e in events] == [("SENT", "marketing"), ("DELIVERED", "marketing")]


async def test_a_guests_message_takes_no_status_parked_under_its_wamid(
        stack, delivery, text_payload, owner_db) -> None:
    """Meta sends statuses only for the business's messages: storing a guest's message neither takes the wamid's
    lock nor looks at the parked statuses (a status wrongly sent for it stays parked until it expires)."""
    tenant, guest = str(uuid.uuid4()), f"1650{uuid.uuid4().int % 10**7:07d}"
    wamid = f"wamid.IN{uuid.uuid4().hex}"
    parked = await stack.messaging.processor.process(delivery(status_payload(wamid, "read", "1750030073"),
                                                              tenant_id=tenant))
    assert parked is not None and parked.detail == "status_parked=1"

    stored = await stack.messaging.processor.process(delivery(
        text_payload((guest, "Guest", wamid, "hello"), timestamp="1750030070"), tenant_id=tenant))

    assert stored is not None and stored.detail == "stored=1"
    [message] = await as_tenant(owner_db, tenant, "SELECT status FROM messages WHERE wamid = $1", wamid)
    assert message["status"] == "RECEIVED"
    assert len(await as_tenant(owner_db, tenant, "SELECT 1 FROM parked_statuses WHERE wamid = $1", wamid)) == 1
    assert await status_events(owner_db, tenant, wamid) == []


async def test_messages_arriving_out_of_order_are_listed_by_metas_timestamp(
        stack, delivery, text_payload, issuer, owner_db) -> None:
    tenant, guest = str(uuid.uuid4()), f"1650{uuid.uuid4().int % 10**7:07d}"
    for wamid, body, timestamp in (("wamid.LATE", "third", "1749416390"), ("wamid.EARLY", "first", "1749416380"),
                                   ("wamid.MID", "second", "1749416385")):
        await stack.messaging.processor.process(delivery(
            text_payload((guest, "Guest", f"{wamid}{tenant}", body), timestamp=timestamp), tenant_id=tenant))
    [row] = await as_tenant(owner_db, tenant, "SELECT DISTINCT conversation_id FROM messages")
    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))
    first = await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(
        conversation_id=str(row["conversation_id"]), limit=2), metadata=user)
    second = await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(
        conversation_id=str(row["conversation_id"]), limit=2, cursor=first.next_cursor), metadata=user)
    bodies = [json.loads(m.content_json)["body"] for m in [*first.items, *second.items]]
    assert bodies == ["first", "second", "third"] and second.next_cursor == ""
    # the latest messages: the last `limit`, still oldest first, no cursor
    latest = await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(
        conversation_id=str(row["conversation_id"]), limit=2, latest=True), metadata=user)
    assert [json.loads(m.content_json)["body"] for m in latest.items] == ["second", "third"]
    assert latest.next_cursor == ""
    every = await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(
        conversation_id=str(row["conversation_id"]), limit=10, latest=True), metadata=user)
    assert [json.loads(m.content_json)["body"] for m in every.items] == ["first", "second", "third"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(
            conversation_id=str(row["conversation_id"]), limit=2, latest=True, cursor=first.next_cursor),
            metadata=user)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


TYPED = {
    "audio": ("audio", lambda c: c["voice"] is False and c["mimeType"].startswith("audio/ogg")),
    "video": ("video", lambda c: c["caption"] == "caption"),
    "document": ("document", lambda c: c["filename"] == "receipt.pdf"),
    "sticker": ("sticker", lambda c: c["animated"] is True),
    "location": ("location", lambda c: c["name"] == "Philz Coffee" and c["latitude"] == 37.44221496582),
    "contacts": ("contacts", lambda c: c["contacts"][0]["name"]["formatted_name"] == "Lucía Gómez"),
    "button_reply": ("interactive", lambda c: c == {"type": "button_reply", "id": "cancel-button",
                                                    "title": "Cancel"}),
    "list_reply": ("interactive", lambda c: c["description"] == "Next Day to 2 Days"),
    "button": ("button", lambda c: c == {"text": "Unsubscribe", "payload": "Unsubscribe"}),
    "reaction": ("reaction", lambda c: c["emoji"] == "\U0001f44d" and c["messageId"].startswith("wamid.")),
    "order": ("order", lambda c: c["catalogId"] == "194836987003835" and len(c["productItems"]) == 2),
    "system": ("system", lambda c: c["type"] == "user_changed_number" and c["waId"] == "12195555358"),
    "unsupported": ("unsupported", lambda c: c["type"] == "edit" and c["errors"][0]["code"] == 131051),
}


@pytest.mark.parametrize("name", sorted(TYPED))
async def test_every_inbound_type_is_stored_typed_and_served(stack, delivery, issuer, owner_db, name: str) -> None:
    tenant = str(uuid.uuid4())
    outcome = await stack.messaging.processor.process(delivery(fixture(name), tenant_id=tenant))
    assert outcome is not None and outcome.detail == "stored=1"
    [row] = await as_tenant(owner_db, tenant, "SELECT id FROM messages")
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(row["id"])),
                                      metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant)))
    kind, check = TYPED[name]
    assert got.type == kind and check(json.loads(got.content_json))
    media_types = {"audio", "video", "document", "sticker"}
    assert (got.media.status == "pending") == (name in media_types)


def reaction_payload(guest: str, wamid: str, target: str, emoji: str | None, timestamp: str) -> dict[str, Any]:
    """The reference's reaction (§3.13) from `guest`, to `target`; no emoji = Meta's removal."""
    payload = copy.deepcopy(fixture("reaction"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = guest
    message = value["messages"][0]
    message.update({"from": guest, "id": wamid, "timestamp": timestamp})
    message["reaction"] = {"message_id": target} | ({"emoji": emoji} if emoji is not None else {})
    return payload


async def test_reactions_are_summarized_on_the_reacted_message_and_removed(
        stack, delivery, text_payload, issuer, owner_db) -> None:
    tenant, guest = str(uuid.uuid4()), f"1650{uuid.uuid4().int % 10**7:07d}"
    target = f"wamid.TARGET{uuid.uuid4().hex}"
    await stack.messaging.processor.process(delivery(
        text_payload((guest, "Guest", target, "Is breakfast included?"), timestamp="1749416380"), tenant_id=tenant))
    [row] = await as_tenant(owner_db, tenant, "SELECT id FROM messages WHERE wamid = $1", target)
    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))

    async def reactions() -> list[dict[str, Any]]:
        got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(row["id"])), metadata=user)
        return json.loads(got.reactions_json) if got.reactions_json else []

    thumbs, heart, removal = (f"wamid.R{n}{uuid.uuid4().hex}" for n in range(3))
    await stack.messaging.processor.process(delivery(reaction_payload(guest, thumbs, target, "👍", "1749416390"),
                                                     tenant_id=tenant))
    assert [r["emoji"] for r in await reactions()] == ["👍"]
    await stack.messaging.processor.process(delivery(reaction_payload(guest, heart, target, "❤️", "1749416395"),
                                                     tenant_id=tenant))
    [current] = await reactions()  # one per guest: the newer replaces the older
    assert (current["emoji"], current["reactionWamid"]) == ("❤️", heart)
    await stack.messaging.processor.process(delivery(reaction_payload(guest, removal, target, None, "1749416399"),
                                                     tenant_id=tenant))
    assert await reactions() == []
    stored = await as_tenant(owner_db, tenant, "SELECT content FROM messages WHERE wamid = $1", removal)
    assert json.loads(stored[0]["content"])["removed"] is True  # the removal itself is recorded
    updates = await as_tenant(owner_db, tenant, "SELECT payload FROM outbox WHERE headers->>'event-type' = "
                                                "'message.updated' ORDER BY id")
    summaries = [json.loads(bytes(u["payload"]))["data"].get("reactions", []) for u in updates]
    assert [[r["emoji"] for r in summary] for summary in summaries] == [["👍"], ["❤️"], []]
