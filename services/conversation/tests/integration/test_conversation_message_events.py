"""The messaging-events consumer: last message, unread count and window move once per event, and a poison record
goes to the dead-letter topic without stopping the loop."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from eva.conversation.v1 import conversation_pb2
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, ContactSnapshot, MessageView
from eva_events.topics import dlq

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def outbox_drained(owner_db) -> bool:
    """No unsent event of any tenant (read as the relay reads: the outbox's RLS lets only it see every tenant)."""
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.role', 'outbox-relay', true)")
        return bool(await owner_db.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"))


async def new_conversation(harness, issuer, tenant_id: str) -> conversation_pb2.ResolveInboundContactResponse:
    wa_id = "1650555" + str(secrets.randbelow(10**6)).zfill(6)
    return await harness.stub.ResolveInboundContact(
        conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant_id, wa_id=wa_id, profile_name="Guest",
                                                      message_at=T0.isoformat()),
        metadata=auth(issuer.service_token(service="messaging")))


def message_event(tenant_id: str, resolved: conversation_pb2.ResolveInboundContactResponse, *, sent_at: datetime,
                  event_type: str = MESSAGE_RECEIVED, direction: str = "inbound") -> EventEnvelope:
    view = MessageView(
        id=str(uuid.uuid4()), conversation_id=resolved.conversation.id, contact_id=resolved.contact.id,
        wamid=f"wamid.{secrets.token_hex(8)}", direction=direction, type="text",
        status="RECEIVED" if direction == "inbound" else "PENDING", content={"body": "hello"}, sent_at=sent_at,
        created_at=sent_at, contact=ContactSnapshot(id=resolved.contact.id, wa_id=resolved.contact.wa_id))
    return make_event(event_type, tenant_id=tenant_id, data=view)


async def get_conversation(harness, issuer, tenant_id: str, conversation_id: str) -> conversation_pb2.Conversation:
    return await harness.stub.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_id),
        metadata=auth(issuer.service_token()))


async def test_each_inbound_message_counts_once_and_announces_the_conversation(
        harness, issuer, kafka, eventually, owner_db) -> None:
    tenant = str(uuid.uuid4())
    resolved = await new_conversation(harness, issuer, tenant)
    conversation_id = resolved.conversation.id
    first = message_event(tenant, resolved, sent_at=T0 + timedelta(minutes=1))
    second = message_event(tenant, resolved, sent_at=T0 + timedelta(minutes=2))
    foreign = message_event(str(uuid.uuid4()), resolved, sent_at=T0 + timedelta(hours=5))  # another tenant's event
    outbound = message_event(tenant, resolved, sent_at=T0 + timedelta(minutes=3), event_type=MESSAGE_CREATED,
                             direction="outbound")
    key = conversation_id.encode()
    for event in (first, first, foreign, second, outbound):  # `first` redelivered; one partition keeps the order
        await kafka.produce(harness.messaging_topic, event.to_bytes(), key=key)

    async def applied() -> conversation_pb2.Conversation | None:
        conversation = await get_conversation(harness, issuer, tenant, conversation_id)
        return conversation if conversation.last_message_at == "2026-11-29T10:03:00.000Z" else None

    conversation = await eventually(applied)
    assert conversation.unread_count == 2  # the redelivery, the other tenant's event and the outbound one: no count
    assert conversation.window_expires_at == "2026-11-30T10:02:00.000Z"  # the latest inbound message + 24 h

    await eventually(lambda: outbox_drained(owner_db))
    records = await kafka.read_all(harness.events_topic)
    updates = [json.loads(r.value) for r in records if r.key == key and
               json.loads(r.value)["type"] == "conversation.updated"]
    # one announcement per batch the consumer took (the records may come in one fetch or in several), each with the
    # state after its batch: the counts only grow, and the last one is the final state
    counts = [u["data"]["unreadCount"] for u in updates]
    assert 1 <= len(counts) <= 3 and counts == sorted(counts) and counts[-1] == 2, counts
    assert updates[-1]["data"]["lastMessageAt"].startswith("2026-11-29T10:03:00")
    assert updates[-1]["data"]["contact"]["id"] == resolved.contact.id and updates[-1]["tenantId"] == tenant


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_loop_goes_on(
        harness, issuer, kafka, eventually) -> None:
    tenant = str(uuid.uuid4())
    resolved = await new_conversation(harness, issuer, tenant)
    key = resolved.conversation.id.encode()
    await kafka.produce(harness.messaging_topic, b"{not json", key=key)
    await kafka.produce(harness.messaging_topic,
                        message_event(tenant, resolved, sent_at=T0 + timedelta(minutes=7)).to_bytes(), key=key)

    async def counted() -> bool:
        conversation = await get_conversation(harness, issuer, tenant, resolved.conversation.id)
        return conversation.unread_count == 1

    await eventually(counted)
    dead = await kafka.wait_for(dlq(harness.messaging_topic), lambda rs: any(r.value == b"{not json" for r in rs))
    record = next(r for r in dead if r.value == b"{not json")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["x-original-topic"] == harness.messaging_topic
    assert headers["x-consumer-group"] == harness.settings.consumer_group
    assert headers["x-error-type"] == "ValidationError" and headers["x-attempts"] == "1"  # no retry decodes it
    assert record.key == key
