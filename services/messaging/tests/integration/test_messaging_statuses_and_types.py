"""Statuses move a message forward only and keep their history; a status for an unknown wamid is parked; every
message type is stored with Meta's own object (and its context, referral and errors)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eva.messaging.v1 import messaging_pb2

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def status_payload(wamid: str, status: str, timestamp: str, errors: list[dict[str, Any]] | None = None
                   ) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": timestamp, "recipient_id": "16505551234"}
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


async def outbound_message(owner_db, tenant_id: str, wamid: str, status: str = "SENT") -> uuid.UUID:
    """An outbound message as the sender (a later issue) will have stored it."""
    message_id = uuid.uuid4()
    await as_tenant(owner_db, tenant_id, """
        INSERT INTO messages (id, tenant_id, conversation_id, contact_id, wamid, direction, type, status, content,
                              sent_at)
        VALUES ($1, $2, $3, $4, $5, 'outbound', 'text', $6, '{"body": "Your room is ready"}', now())""",
                    message_id, tenant_id, uuid.uuid4(), uuid.uuid4(), wamid, status)
    return message_id


async def test_statuses_move_a_message_forward_only_and_keep_their_history(stack, delivery, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.OUT{uuid.uuid4().hex}"
    message_id = await outbound_message(owner_db, tenant, wamid)
    processor = stack.messaging.processor
    for status, timestamp in (("read", "1750030090"), ("delivered", "1750030080"), ("failed", "1750030085"),
                              ("sent", "1750030073"), ("read", "1750030090")):  # out of order, and a redelivery
        await processor.process(delivery(status_payload(wamid, status, timestamp), tenant_id=tenant))

    [message] = await as_tenant(owner_db, tenant, "SELECT status, error FROM messages WHERE id = $1", message_id)
    assert message["status"] == "READ" and message["error"] is None
    history = await as_tenant(owner_db, tenant, "SELECT status, occurred_at FROM message_statuses "
                                                "WHERE message_id = $1 ORDER BY status", message_id)
    assert [(h["status"], h["occurred_at"]) for h in history] == [
        ("DELIVERED", datetime.fromtimestamp(1750030080, UTC)), ("FAILED", datetime.fromtimestamp(1750030085, UTC)),
        ("READ", datetime.fromtimestamp(1750030090, UTC)), ("SENT", datetime.fromtimestamp(1750030073, UTC))]
    changes = await as_tenant(
        owner_db, tenant, "SELECT payload FROM outbox WHERE headers->>'event-type' = 'message.status_changed' "
        "AND position($1::bytea IN payload) > 0", wamid.encode())
    assert [json.loads(bytes(c["payload"]))["data"]["status"] for c in changes] == ["READ"]


async def test_failed_keeps_metas_error_and_yields_to_a_later_delivered(stack, delivery, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.OUT{uuid.uuid4().hex}"
    message_id = await outbound_message(owner_db, tenant, wamid)
    failed = copy.deepcopy(fixture("status_failed"))
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
    await stack.messaging.processor.process(delivery(failed, tenant_id=tenant))

    [message] = await as_tenant(owner_db, tenant, "SELECT status, error FROM messages WHERE id = $1", message_id)
    assert message["status"] == "FAILED" and json.loads(message["error"])[0]["code"] == 131049
    sent_again = await stack.messaging.processor.process(delivery(status_payload(wamid, "sent", "1"),
                                                                  tenant_id=tenant))
    assert sent_again is not None and sent_again.detail == "status_recorded=1"  # never backwards
    await stack.messaging.processor.process(delivery(status_payload(wamid, "delivered", "1751142999"),
                                                     tenant_id=tenant))
    [message] = await as_tenant(owner_db, tenant, "SELECT status FROM messages WHERE id = $1", message_id)
    assert message["status"] == "DELIVERED"


async def test_a_status_for_an_unknown_wamid_is_parked_once(stack, delivery, owner_db) -> None:
    tenant, wamid = str(uuid.uuid4()), f"wamid.UNKNOWN{uuid.uuid4().hex}"
    outcome = None
    for _ in range(2):
        outcome = await stack.messaging.processor.process(delivery(status_payload(wamid, "delivered", "1750030080"),
                                                                   tenant_id=tenant))
    assert outcome is not None and (outcome.statuses, outcome.detail) == (1, "status_parked=1")
    parked = await as_tenant(owner_db, tenant, "SELECT status, recipient_id, payload FROM parked_statuses "
                                               "WHERE wamid = $1", wamid)
    assert [(p["status"], p["recipient_id"]) for p in parked] == [("DELIVERED", "16505551234")]
    assert json.loads(parked[0]["payload"])["timestamp"] == "1750030080"


async def test_the_reference_batch_stores_both_messages_in_order_and_parks_its_statuses(
        stack, delivery, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    outcome = await stack.messaging.processor.process(delivery(fixture("batch"), tenant_id=tenant))
    assert outcome is not None
    assert (outcome.messages, outcome.statuses) == (2, 2)
    assert outcome.detail == "status_parked=2 stored=2"
    parked = await as_tenant(owner_db, tenant, "SELECT wamid, status FROM parked_statuses WHERE tenant_id = $1 "
                                               "ORDER BY wamid", tenant)
    assert [(p["wamid"], p["status"]) for p in parked] == [("wamid.OUT1", "READ"), ("wamid.OUT2", "DELIVERED")]
    [row] = await as_tenant(owner_db, tenant, "SELECT DISTINCT conversation_id FROM messages")
    listed = await stack.stub.ListMessages(
        messaging_pb2.ListMessagesRequest(conversation_id=str(row["conversation_id"])),
        metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant)))
    assert [(m.wamid, json.loads(m.content_json)["body"]) for m in listed.items] == [
        ("wamid.A1", "first"), ("wamid.A2", "second")]


async def test_every_type_is_stored_with_metas_object_context_referral_and_errors(
        stack, delivery, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    for name in ("image", "system", "unsupported", "referral", "reply_context", "bsuid_only", "value_errors"):
        await stack.messaging.processor.process(delivery(fixture(name), tenant_id=tenant))
    rows = await as_tenant(owner_db, tenant, "SELECT id, wamid, type FROM messages")
    by_wamid = {r["wamid"]: r for r in rows}
    assert len(rows) == 6  # value.errors carries no message

    user = auth(issuer.user_token(user_id="agent", tenant_id=tenant))

    async def get(wamid: str) -> messaging_pb2.Message:
        return await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=str(by_wamid[wamid]["id"])),
                                           metadata=user)

    image = await get("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
    assert image.type == "image" and json.loads(image.content_json)["caption"] == "Taj Mahal"
    assert image.status == "RECEIVED" and image.direction == "inbound" and image.sent_at == "2025-04-11T04:08:16.000Z"
    system = await get("wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==")
    assert system.type == "system" and json.loads(system.content_json)["type"] == "user_changed_number"
    unsupported = await get("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=")
    assert unsupported.type == "unsupported" and json.loads(unsupported.error_json)[0]["code"] == 131051
    referral = await get("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=")
    assert json.loads(referral.referral_json)["source_id"] == "120226305854810726"
    reply = await get("wamid.xyzxyz")
    assert json.loads(reply.context_json) == {"from": "972123456789", "id": "wamid.xyzxyz=="}
    bsuid = await get("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJTVUlET05MWTAwMDAwMDAwMQA=")
    assert json.loads(bsuid.content_json) == {"body": "Hi, username only here"}
    raw = await as_tenant(owner_db, tenant, "SELECT raw FROM messages WHERE wamid = 'wamid.xyzxyz'")
    assert json.loads(raw[0]["raw"])["from"] == "972987654321"  # Meta's whole object is kept
