"""Webhook deliveries processed a batch at a time (WebhookProcessor.process_many) on the real database and the real
conversation service: every message stored once and announced in the batch's order, each guest's contact and
conversation resolved once per batch (at the guest's latest message), one outcome and one `webhook.processed` per
delivery; duplicates inside the batch and against earlier batches; statuses meeting their message in the same batch;
and a failing delivery that leaves nothing of its batch written, so the records can be redone one by one."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from eva_common.errors import InvalidArgument
from eva_events.envelope import make_event
from messaging_service.inbound import InboundSender, ResolvedSender, WebhookProcessor
from sqlalchemy.exc import DBAPIError

# PostgreSQL's refusal, through SQLAlchemy or from a statement written directly on asyncpg
REFUSED = (DBAPIError, asyncpg.PostgresError)

pytestmark = pytest.mark.integration

NUMBER = "106540352242922"


def new_wa_id() -> str:
    return "1650555" + str(secrets.randbelow(10**6)).zfill(6)


def new_wamid() -> str:
    return f"wamid.HBgL{secrets.token_hex(12).upper()}="


def status_payload(wamid: str, status: str, timestamp: str) -> dict[str, Any]:
    item = {"id": wamid, "status": status, "timestamp": timestamp, "recipient_id": "16505551234"}
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": NUMBER}, "statuses": [item]}}]}]}


class CountingResolver:
    """The real conversation client, recording every call: (tenant, wa_id, message_at, echo)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[tuple[str, str | None, datetime, bool]] = []

    async def resolve_inbound_contacts(self, *, tenant_id: str,
                                       senders: Sequence[InboundSender]) -> list[ResolvedSender]:
        self.calls.extend((tenant_id, item.sender.wa_id, item.message_at, item.echo) for item in senders)
        resolved: list[ResolvedSender] = await self._inner.resolve_inbound_contacts(tenant_id=tenant_id,
                                                                                    senders=senders)
        return resolved


def processor(stack: Any) -> tuple[WebhookProcessor, CountingResolver]:
    resolver = CountingResolver(stack.messaging.conversations)
    return WebhookProcessor(sessions=stack.messaging.sessions, resolver=resolver, events_topic=stack.events_topic,
                            outcomes_topic=stack.outcomes_topic), resolver


async def as_tenant(owner_db: Any, tenant_id: str, sql: str, *args: Any) -> list[Any]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows: list[Any] = await owner_db.fetch(sql, *args)
    return rows


async def outbox(owner_db: Any, tenant_id: str, event_type: str) -> list[dict[str, Any]]:
    """The tenant's outbox events of a type, oldest first, with their Kafka key."""
    rows = await as_tenant(owner_db, tenant_id, "SELECT msg_key, payload FROM outbox WHERE headers->>'event-type' = $1 "
                                                "ORDER BY id", event_type)
    return [{**json.loads(bytes(row["payload"])), "_key": row["msg_key"]} for row in rows]


async def messages(owner_db: Any, tenant_id: str) -> list[Any]:
    return await as_tenant(owner_db, tenant_id, "SELECT wamid, conversation_id, contact_id, direction, status, "
                                                "content FROM messages ORDER BY id")


def at(timestamp: str) -> datetime:
    return datetime.fromtimestamp(int(timestamp), UTC)


async def test_a_batch_of_two_tenants_and_three_guests_stores_each_message_once_resolving_each_guest_once(
        stack, delivery, text_payload, owner_db) -> None:
    first_tenant, second_tenant = str(uuid.uuid4()), str(uuid.uuid4())
    ana, bruno, carla = new_wa_id(), new_wa_id(), new_wa_id()
    wamids = [new_wamid() for _ in range(5)]
    # Ana writes three times; Meta's timestamps need not follow the batch's order: her latest is the second one
    sent = [
        (first_tenant, ana, "Ana", wamids[0], "one", "1749416380"),
        (second_tenant, carla, "Carla", wamids[1], "olá", "1749416381"),
        (first_tenant, ana, "Ana", wamids[2], "three", "1749416390"),
        (first_tenant, bruno, "Bruno", wamids[3], "oi", "1749416382"),
        (first_tenant, ana, "Ana", wamids[4], "two", "1749416385"),
    ]
    envelopes = [delivery(text_payload((wa, name, wamid, body), timestamp=ts), tenant_id=tenant)
                 for tenant, wa, name, wamid, body, ts in sent]
    other = make_event("tenant.updated", tenant_id=first_tenant, data={"id": first_tenant})
    batch = [*envelopes[:3], other, *envelopes[3:]]
    batching, resolver = processor(stack)

    outcomes = await batching.process_many(batch)

    assert len(outcomes) == len(batch) and outcomes[3] is None  # one per delivery, in order; None for the other
    delivered = [outcome for outcome in outcomes if outcome is not None]
    assert [o.delivery_id for o in delivered] == [e.data["deliveryId"] for e in envelopes]
    assert [(o.outcome, o.messages, o.detail) for o in delivered] == [("processed", 1, "stored=1")] * 5
    assert sorted(resolver.calls) == sorted([  # once per guest, at the guest's latest message
        (first_tenant, ana, at("1749416390"), False), (first_tenant, bruno, at("1749416382"), False),
        (second_tenant, carla, at("1749416381"), False)])

    first_rows, second_rows = await messages(owner_db, first_tenant), await messages(owner_db, second_tenant)
    assert [row["wamid"] for row in first_rows] == [wamids[0], wamids[2], wamids[3], wamids[4]]  # the batch's order
    assert [row["wamid"] for row in second_rows] == [wamids[1]]
    assert [json.loads(row["content"])["body"] for row in first_rows] == ["one", "three", "oi", "two"]
    anas = [row for row in first_rows if row["wamid"] in (wamids[0], wamids[2], wamids[4])]
    assert len({(row["conversation_id"], row["contact_id"]) for row in anas}) == 1  # one conversation for Ana
    assert anas[0]["conversation_id"] != first_rows[2]["conversation_id"]  # Bruno has his own

    received = await outbox(owner_db, first_tenant, "message.received")
    assert [event["data"]["wamid"] for event in received] == [wamids[0], wamids[2], wamids[3], wamids[4]]
    assert [event["data"]["contact"]["waId"] for event in received] == [ana, ana, bruno, ana]
    assert [event["data"]["wamid"] for event in await outbox(owner_db, second_tenant, "message.received")] == [
        wamids[1]]

    for tenant, expected in ((first_tenant, [0, 2, 3, 4]), (second_tenant, [1])):
        processed = await outbox(owner_db, tenant, "webhook.processed")
        assert [event["_key"] for event in processed] == [envelopes[i].data["deliveryId"] for i in expected]
        assert [event["data"]["detail"] for event in processed] == ["stored=1"] * len(expected)
        assert all(event["tenantId"] == tenant for event in processed)


async def test_the_same_wamid_twice_in_one_batch_is_stored_once(stack, delivery, text_payload, owner_db) -> None:
    tenant, guest, wamid = str(uuid.uuid4()), new_wa_id(), new_wamid()
    copies = [delivery(text_payload((guest, "Guest", wamid, "twice")), tenant_id=tenant) for _ in range(2)]
    batching, resolver = processor(stack)

    outcomes = await batching.process_many(copies)

    assert [o.detail if o else None for o in outcomes] == ["stored=1", "duplicate=1"]
    assert [row["wamid"] for row in await messages(owner_db, tenant)] == [wamid]
    assert len(await outbox(owner_db, tenant, "message.received")) == 1
    assert len(await outbox(owner_db, tenant, "webhook.processed")) == 2  # both deliveries report an outcome
    assert len(resolver.calls) == 1


async def test_an_already_stored_wamid_is_a_duplicate_and_its_sender_is_not_resolved(
        stack, delivery, text_payload, owner_db) -> None:
    tenant, known_guest, new_guest = str(uuid.uuid4()), new_wa_id(), new_wa_id()
    known, fresh = new_wamid(), new_wamid()
    earlier, _ = processor(stack)
    await earlier.process(delivery(text_payload((known_guest, "Known", known, "before")), tenant_id=tenant))
    batching, resolver = processor(stack)

    outcomes = await batching.process_many([
        delivery(text_payload((known_guest, "Known", known, "before")), tenant_id=tenant),
        delivery(text_payload((new_guest, "New", fresh, "now")), tenant_id=tenant)])

    assert [o.detail if o else None for o in outcomes] == ["duplicate=1", "stored=1"]
    assert [(call[0], call[1]) for call in resolver.calls] == [(tenant, new_guest)]  # the known guest: no call
    assert [row["wamid"] for row in await messages(owner_db, tenant)] == [known, fresh]
    assert [e["data"]["wamid"] for e in await outbox(owner_db, tenant, "message.received")] == [known, fresh]


async def test_statuses_meet_their_messages_in_the_same_batch(stack, delivery, echo_payload, owner_db) -> None:
    tenant, guest = str(uuid.uuid4()), new_wa_id()
    echoed, parked_for = new_wamid(), new_wamid()
    batching, resolver = processor(stack)

    outcomes = await batching.process_many([
        delivery(echo_payload(guest, echoed, "See you at 3 pm"), tenant_id=tenant),
        delivery(status_payload(echoed, "delivered", "1749416390"), tenant_id=tenant),  # stored just before
        delivery(status_payload(parked_for, "read", "1749416395"), tenant_id=tenant),  # its message comes after
        delivery(echo_payload(guest, parked_for, "Breakfast is at 8"), tenant_id=tenant),
    ])

    assert [o.detail if o else None for o in outcomes] == [
        "echo_stored=1", "status_applied=1", "status_parked=1", "echo_stored=1"]
    assert len(resolver.calls) == 1 and resolver.calls[0][1:] == (guest, at("1749416383"), True)
    rows = await messages(owner_db, tenant)
    assert [(row["wamid"], row["direction"], row["status"]) for row in rows] == [
        (echoed, "outbound", "DELIVERED"), (parked_for, "outbound", "READ")]
    assert await as_tenant(owner_db, tenant, "SELECT 1 FROM parked_statuses WHERE wamid = $1", parked_for) == []
    history = await as_tenant(owner_db, tenant, "SELECT wamid, status FROM message_statuses ORDER BY id")
    assert [(row["wamid"], row["status"]) for row in history] == [(echoed, "DELIVERED"), (parked_for, "READ")]
    changed = await outbox(owner_db, tenant, "message.status_changed")
    assert [(e["data"]["wamid"], e["data"]["status"]) for e in changed] == [(echoed, "DELIVERED"), (parked_for, "READ")]


async def test_a_failing_delivery_leaves_nothing_of_its_batch_written_and_each_record_can_be_redone(
        stack, delivery, text_payload, owner_db) -> None:
    tenant, guest, other_guest = str(uuid.uuid4()), new_wa_id(), new_wa_id()
    good, poison = new_wamid(), new_wamid()
    good_delivery = delivery(text_payload((guest, "Guest", good, "fine")), tenant_id=tenant)
    # PostgreSQL's jsonb refuses \u0000: this delivery fails inside the tenant's transaction, after `good` was written
    poison_delivery = delivery(text_payload((other_guest, "Other", poison, "nul \x00 byte")), tenant_id=tenant)
    batching, resolver = processor(stack)

    with pytest.raises(REFUSED):
        await batching.process_many([good_delivery, poison_delivery])

    assert len(resolver.calls) == 2  # both guests got as far as the write
    assert await messages(owner_db, tenant) == []
    assert await outbox(owner_db, tenant, "message.received") == []
    assert await outbox(owner_db, tenant, "webhook.processed") == []

    untenanted = make_event(good_delivery.type, tenant_id="", data=good_delivery.data)
    with pytest.raises(InvalidArgument):
        await batching.process_many([good_delivery, untenanted])
    assert await messages(owner_db, tenant) == []
    assert len(resolver.calls) == 2  # refused before anything was resolved or written

    redone = await batching.process_many([good_delivery])  # the consumer's fallback: record by record
    assert [o.detail if o else None for o in redone] == ["stored=1"]  # not a duplicate: nothing was left before
    assert [row["wamid"] for row in await messages(owner_db, tenant)] == [good]
    processed = await outbox(owner_db, tenant, "webhook.processed")
    assert [(e["_key"], e["data"]["detail"]) for e in processed] == [(good_delivery.data["deliveryId"], "stored=1")]
    with pytest.raises(REFUSED):
        await batching.process_many([poison_delivery])  # the poison alone fails again (and is dead-lettered)
    assert [row["wamid"] for row in await messages(owner_db, tenant)] == [good]


async def test_a_batchs_statuses_of_stored_messages_move_each_message_forward_in_its_own_order(
    stack, delivery, echo_payload, owner_db
) -> None:
    """The statuses of messages stored before the batch are applied together (the messages read locked at once, a
    message's statuses in rounds): each message moves forward only, in the order Meta sent its statuses; a late
    status is recorded without moving it, a repeated one is not recorded twice, the first pricing category stays."""
    tenant, guest = str(uuid.uuid4()), new_wa_id()
    first, second = new_wamid(), new_wamid()
    batching, _ = processor(stack)
    await batching.process_many([delivery(echo_payload(guest, first, "Your room is ready"), tenant_id=tenant),
                                 delivery(echo_payload(guest, second, "Breakfast is at 8"), tenant_id=tenant)])

    def priced(wamid: str, status: str, timestamp: str, category: str) -> dict[str, Any]:
        payload = status_payload(wamid, status, timestamp)
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] = {
            "billable": True, "pricing_model": "PMP", "category": category}
        return payload

    outcomes = await batching.process_many([
        delivery(status_payload(first, "delivered", "1749416390"), tenant_id=tenant),
        delivery(priced(second, "delivered", "1749416391", "utility"), tenant_id=tenant),
        delivery(status_payload(first, "read", "1749416392"), tenant_id=tenant),
        delivery(priced(second, "sent", "1749416389", "marketing"), tenant_id=tenant),  # late: recorded, no move
        delivery(status_payload(first, "delivered", "1749416390"), tenant_id=tenant),  # Meta's redelivery
    ])

    assert [o.detail if o else None for o in outcomes] == [
        "status_applied=1", "status_applied=1", "status_applied=1", "status_recorded=1", "status_recorded=1"]
    rows = await as_tenant(owner_db, tenant, "SELECT wamid, status, pricing_category FROM messages ORDER BY sent_at")
    assert [(row["wamid"], row["status"], row["pricing_category"]) for row in rows] == [
        (first, "READ", None), (second, "DELIVERED", "utility")]
    history = await as_tenant(owner_db, tenant, "SELECT wamid, status FROM message_statuses ORDER BY id")
    assert sorted((row["wamid"], row["status"]) for row in history) == sorted([
        (first, "DELIVERED"), (second, "DELIVERED"), (first, "READ"), (second, "SENT")])
    changed = await outbox(owner_db, tenant, "message.status_changed")
    assert [(e["data"]["wamid"], e["data"]["status"]) for e in changed] == [
        (first, "DELIVERED"), (second, "DELIVERED"), (first, "READ")]
    assert changed[1]["data"].get("category") == "utility"
