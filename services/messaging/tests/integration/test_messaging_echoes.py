"""Coexistence echoes end to end (reference §12): an `smb_message_echoes` delivery on Kafka → the messaging consumer
resolves the guest's contact and conversation through the real conversation service (echo=True), stores the echo
once as an OUTBOUND message from the business app (SENT), and announces it as `message.created`."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration

NUMBER = "106540352242922"


def created(records: list[Any], wamid: str) -> list[dict[str, Any]]:
    events = [json.loads(record.value) for record in records]
    return [event for event in events if event["data"].get("wamid") == wamid]


def outcome_of(records: list[Any], delivery_id: str) -> dict[str, Any] | None:
    for record in records:
        event = json.loads(record.value)
        if event["data"]["deliveryId"] == delivery_id:
            return dict(event["data"])
    return None


async def test_an_echo_is_stored_once_as_a_business_app_message_and_announced(
        stack, kafka, delivery, echo_payload, owner_db) -> None:
    tenant, wa_id = str(uuid.uuid4()), "1650555" + str(secrets.randbelow(10**6)).zfill(6)
    wamid = f"wamid.ECHO{secrets.token_hex(10).upper()}="
    first = delivery(echo_payload(wa_id, wamid, "See you at 3 pm"), tenant_id=tenant)
    await kafka.produce(stack.webhooks_topic, first.to_bytes(), key=NUMBER.encode())

    records = await kafka.wait_for(stack.events_topic, lambda rs: bool(created(rs, wamid)))
    [event] = created(records, wamid)
    assert event["type"] == "message.created" and event["tenantId"] == tenant
    data = event["data"]
    assert (data["direction"], data["status"], data["type"], data["content"]) == (
        "outbound", "SENT", "text", {"body": "See you at 3 pm"})
    assert data["source"] == "business_app" and data["sender"] == {"kind": "business_app", "id": None, "name": None}
    assert data["contact"]["waId"] == wa_id and data["contactId"] == data["contact"]["id"]
    assert data["sentAt"].startswith("2025-06-08T20:59:43")

    outcomes = await kafka.wait_for(stack.outcomes_topic, lambda rs: outcome_of(rs, first.data["deliveryId"]))
    assert outcome_of(outcomes, first.data["deliveryId"])["detail"] == "echo_stored=1"  # type: ignore[index]

    again = delivery(echo_payload(wa_id, wamid, "See you at 3 pm"), tenant_id=tenant)
    await kafka.produce(stack.webhooks_topic, again.to_bytes(), key=NUMBER.encode())
    outcomes = await kafka.wait_for(stack.outcomes_topic, lambda rs: outcome_of(rs, again.data["deliveryId"]))
    assert outcome_of(outcomes, again.data["deliveryId"])["detail"] == "echo_duplicate=1"  # type: ignore[index]
    assert len(created(await kafka.read_all(stack.events_topic), wamid)) == 1
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        rows = await owner_db.fetch("SELECT direction, status, source, sender FROM messages WHERE wamid = $1", wamid)
    assert [(r["direction"], r["status"], r["source"], json.loads(r["sender"])) for r in rows] == [
        ("outbound", "SENT", "business_app", {"kind": "business_app"})]
