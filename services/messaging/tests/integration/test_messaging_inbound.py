"""The inbound path end to end on real components: a `webhook.received` on Kafka → the messaging consumer stores
the message once, resolves its contact through the real conversation gRPC server, and the outbox relay announces
`message.received` (which the conversation service consumes in turn)."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from messaging_service.inbound import WebhookProcessor

pytestmark = pytest.mark.integration


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def new_wa_id() -> str:
    return "1650555" + str(secrets.randbelow(10**6)).zfill(6)


def new_wamid() -> str:
    return f"wamid.HBgL{secrets.token_hex(12).upper()}="


def events_of(records: list[Any], wamid: str) -> list[dict[str, Any]]:
    found = []
    for record in records:
        event = json.loads(record.value)
        if event["data"].get("wamid") == wamid:
            found.append({**event, "_key": record.key.decode()})
    return found


async def messages_with(owner_db, tenant_id: str, wamid: str) -> int:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        count: int = await owner_db.fetchval("SELECT count(*) FROM messages WHERE wamid = $1", wamid)
    return count


async def outbox_drained(owner_db) -> bool:
    """No unsent event of any tenant (read as the relay reads: the outbox's RLS lets only it see every tenant)."""
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.role', 'outbox-relay', true)")
        return bool(await owner_db.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"))


async def test_a_text_delivery_is_stored_announced_counted_and_reported(
        stack, kafka, eventually, delivery, text_payload, issuer, owner_db) -> None:
    tenant, wa_id, wamid = str(uuid.uuid4()), new_wa_id(), new_wamid()
    text = "Olá! Há quarto livre hoje? café ☕ https://x.y/z"
    envelope = delivery(text_payload((wa_id, "José Álvarez", wamid, text)), tenant_id=tenant)
    await kafka.produce(stack.webhooks_topic, envelope.to_bytes(), key=b"106540352242922")

    records = await kafka.wait_for(stack.events_topic, lambda rs: bool(events_of(rs, wamid)))
    [event] = events_of(records, wamid)
    assert event["type"] == "message.received" and event["tenantId"] == tenant
    data = event["data"]
    assert event["_key"] == data["conversationId"]  # keyed by conversation id: per-conversation order
    assert data["content"] == {"body": text} and data["type"] == "text"
    assert (data["direction"], data["status"]) == ("inbound", "RECEIVED")
    assert data["sentAt"].startswith("2025-06-08T20:59:43")
    assert data["contact"] == {"id": data["contactId"], "waId": wa_id, "name": "José Álvarez",
                               "phone": f"+{wa_id}"}
    assert stack.tokens.calls >= 1  # the conversation service was called with this service's own token

    outcomes = await kafka.wait_for(stack.outcomes_topic, lambda rs: any(
        json.loads(r.value)["data"]["deliveryId"] == envelope.data["deliveryId"] for r in rs))
    [outcome] = [json.loads(r.value) for r in outcomes
                 if json.loads(r.value)["data"]["deliveryId"] == envelope.data["deliveryId"]]
    assert outcome["type"] == "webhook.processed" and outcome["tenantId"] == tenant
    assert outcome["data"] == {"deliveryId": envelope.data["deliveryId"], "outcome": "processed", "messages": 1,
                               "statuses": 0, "detail": "stored=1"}

    async def unread() -> bool:  # the conversation service consumed message.received
        conversation = await stack.conversations.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=data["conversationId"], tenant_id=tenant),
            metadata=auth(issuer.service_token()))
        return conversation.unread_count == 1 and conversation.contact.name == "José Álvarez"

    await eventually(unread)
    listed = await stack.stub.ListMessages(
        messaging_pb2.ListMessagesRequest(conversation_id=data["conversationId"]),
        metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant, role="attendant")))
    assert [(m.wamid, json.loads(m.content_json)) for m in listed.items] == [(wamid, {"body": text})]
    assert listed.next_cursor == "" and listed.items[0].id == data["id"]
    assert await messages_with(owner_db, tenant, wamid) == 1


async def test_the_same_delivery_twice_stores_one_message_and_one_event(
        stack, kafka, eventually, delivery, text_payload, owner_db) -> None:
    tenant, wa_id, wamid, sentinel = str(uuid.uuid4()), new_wa_id(), new_wamid(), new_wamid()
    envelope = delivery(text_payload((wa_id, "Guest", wamid, "once")), tenant_id=tenant)
    key = b"106540352242922"  # one key, one partition: the copies are handled before the sentinel
    await kafka.produce(stack.webhooks_topic, envelope.to_bytes(), key=key)
    await kafka.produce(stack.webhooks_topic, envelope.to_bytes(), key=key)
    await kafka.produce(stack.webhooks_topic,
                        delivery(text_payload((wa_id, "Guest", sentinel, "after")), tenant_id=tenant).to_bytes(),
                        key=key)

    await kafka.wait_for(stack.events_topic, lambda rs: bool(events_of(rs, sentinel)))
    await eventually(lambda: outbox_drained(owner_db))
    records = await kafka.read_all(stack.events_topic)
    assert len(events_of(records, wamid)) == 1
    assert await messages_with(owner_db, tenant, wamid) == 1
    outcomes = [json.loads(r.value)["data"] for r in await kafka.read_all(stack.outcomes_topic)]
    copies = [o for o in outcomes if o["deliveryId"] == envelope.data["deliveryId"]]
    assert sorted(o["detail"] for o in copies) == ["duplicate=1", "stored=1"]


class BarrierResolver:
    """The real conversation client, released only when every concurrent caller has reached it: all copies get
    past the "already stored?" check before any of them stores."""

    def __init__(self, inner: Any, parties: int) -> None:
        self._inner = inner
        self._barrier = asyncio.Barrier(parties)

    async def resolve_inbound_contacts(self, **kwargs: Any) -> Any:
        await self._barrier.wait()
        return await self._inner.resolve_inbound_contacts(**kwargs)


async def test_copies_processed_at_the_same_moment_store_one_message_and_one_event(
        stack, delivery, text_payload, owner_db) -> None:
    tenant, wa_id, wamid = str(uuid.uuid4()), new_wa_id(), new_wamid()
    envelope = delivery(text_payload((wa_id, "Guest", wamid, "race")), tenant_id=tenant)
    copies = 3
    racing = WebhookProcessor(
        sessions=stack.messaging.sessions, resolver=BarrierResolver(stack.messaging.conversations, copies),
        events_topic=stack.events_topic, outcomes_topic=stack.outcomes_topic)

    outcomes = await asyncio.gather(*(racing.process(envelope) for _ in range(copies)))

    assert sorted(o.detail or "" for o in outcomes) == ["duplicate=1", "duplicate=1", "stored=1"]
    assert await messages_with(owner_db, tenant, wamid) == 1
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        announced = await owner_db.fetchval(
            "SELECT count(*) FROM outbox WHERE headers->>'event-type' = 'message.received' "
            "AND position($1::bytea IN payload) > 0", wamid.encode())
    assert announced == 1


async def test_two_guests_in_one_delivery_get_their_own_contacts_and_conversations(
        stack, kafka, delivery, text_payload) -> None:
    tenant = str(uuid.uuid4())
    (guest_a, wamid_a), (guest_b, wamid_b) = (new_wa_id(), new_wamid()), (new_wa_id(), new_wamid())
    payload = text_payload((guest_a, "Ana", wamid_a, "hola"), (guest_b, "Bruno", wamid_b, "oi"))
    await kafka.produce(stack.webhooks_topic, delivery(payload, tenant_id=tenant).to_bytes(), key=b"1")

    records = await kafka.wait_for(stack.events_topic,
                                   lambda rs: bool(events_of(rs, wamid_a)) and bool(events_of(rs, wamid_b)))
    [a], [b] = events_of(records, wamid_a), events_of(records, wamid_b)
    assert (a["data"]["contact"]["waId"], a["data"]["contact"]["name"]) == (guest_a, "Ana")
    assert (b["data"]["contact"]["waId"], b["data"]["contact"]["name"]) == (guest_b, "Bruno")
    assert a["data"]["conversationId"] != b["data"]["conversationId"]
    assert a["data"]["contactId"] != b["data"]["contactId"]


async def test_a_dead_letter_for_a_poison_record_and_the_loop_goes_on(
        stack, kafka, delivery, text_payload) -> None:
    tenant, wamid = str(uuid.uuid4()), new_wamid()
    await kafka.produce(stack.webhooks_topic, b"\xff{not json", key=b"poison")
    await kafka.produce(stack.webhooks_topic,
                        delivery(text_payload((new_wa_id(), "After", wamid, "still here")), tenant_id=tenant)
                        .to_bytes(), key=b"poison")

    await kafka.wait_for(stack.events_topic, lambda rs: bool(events_of(rs, wamid)))
    dead = await kafka.wait_for(f"{stack.webhooks_topic}.dlq",
                                lambda rs: any(r.value == b"\xff{not json" for r in rs))
    record = next(r for r in dead if r.value == b"\xff{not json")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["x-original-topic"] == stack.webhooks_topic and headers["x-attempts"] == "1"  # never retried
    assert headers["x-consumer-group"] == stack.settings.consumer_group
    assert headers["x-error-type"] == "ValidationError" and headers["x-error"]
    assert record.key == b"poison"
