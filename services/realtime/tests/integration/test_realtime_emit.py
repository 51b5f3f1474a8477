"""Events produced to Kafka reach browsers through the Redis channel, with per-tenant seq, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from eva_common.kafka.consumer import ConsumerLoop
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.realtime.sequence import RedisSequencer, event_key, replay_key
from eva_events.conversation import CONVERSATION_ASSIGNED, ConversationAssigned
from eva_events.envelope import EventEnvelope, make_event
from eva_testing.infra import TestInfra
from eva_testing.kafka import RecordingPublisher, create_topics, unique_topic
from realtime_service.emitter import RedisSocketEmitter
from realtime_service.handlers import event_handler
from realtime_service.service import RealtimeRelay
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


@dataclass
class Relay:
    messaging_topic: str
    conversation_topic: str
    sequencer: RedisSequencer
    producer: KafkaPublisher


@pytest.fixture(scope="module")
async def relay(infra: TestInfra, redis: Redis, socket_server: Any) -> AsyncIterator[Relay]:
    """The realtime relay as main.py wires it: a ConsumerLoop on both topics, the sequencer and the emitter."""
    messaging_topic, conversation_topic = unique_topic("messaging-events"), unique_topic("conversation-events")
    await create_topics(infra.kafka_bootstrap, messaging_topic, conversation_topic)
    sequencer = RedisSequencer(redis=redis, buffer_size=1000, dedupe_ttl_seconds=3600)
    emitter = RedisSocketEmitter(redis_url=infra.redis_url, channel=socket_server.channel)
    loop = ConsumerLoop(bootstrap=infra.kafka_bootstrap, topics=[messaging_topic, conversation_topic],
                        group_id=f"realtime-test-{uuid.uuid4().hex[:8]}",
                        handler=event_handler(relay=RealtimeRelay(sequencer=sequencer, emitter=emitter)),
                        dead_letters=RecordingPublisher())
    await loop.start()
    task = asyncio.create_task(loop.run())
    producer = KafkaPublisher(infra.kafka_bootstrap, client_id="realtime-test")
    await producer.start()
    yield Relay(messaging_topic, conversation_topic, sequencer, producer)
    await producer.stop()
    await loop.stop()
    await task
    await emitter.close()


def message(tenant_id: str, message_id: str, event_type: str = "message.received") -> EventEnvelope:
    return make_event(event_type, tenant_id=tenant_id, data={
        "id": message_id, "conversationId": "conv-1", "contactId": "contact-1", "wamid": f"wamid.{message_id}",
        "direction": "inbound", "type": "text", "status": "RECEIVED", "content": {"text": {"body": "Olá"}},
        "sentAt": None, "createdAt": "2026-11-29T08:00:00Z",
        "contact": {"id": "contact-1", "waId": "16505551234", "name": "José", "phone": "+16505551234"},
    })


async def produce(relay: Relay, envelope: EventEnvelope, topic: str | None = None) -> None:
    # one key for every event of these tests: one partition, so they are relayed in the order produced
    await relay.producer.publish_event(topic or relay.messaging_topic, envelope, key="conv-1")


async def test_message_events_reach_their_tenant_with_seq_once(relay: Relay, browser: Any, redis: Redis) -> None:
    tenant_a, tenant_b = f"tenant-{uuid.uuid4().hex[:8]}", f"tenant-{uuid.uuid4().hex[:8]}"
    async with browser(f"tenant:{tenant_a}") as alice, browser(f"tenant:{tenant_b}") as bob:
        first = message(tenant_a, "m1")
        await produce(relay, first)
        event, payload = await alice.next()
        assert event == "message:new"
        assert payload == {**first.data, "seq": 1}
        assert payload["contact"]["name"] == "José"

        await produce(relay, message(tenant_a, "m2", "message.created"))
        assert await alice.next() == ("message:new", {**message(tenant_a, "m2").data, "seq": 2})

        # the same event redelivered: same seq, not emitted again (the next thing alice gets is m3, seq 3)
        await produce(relay, first)
        await produce(relay, message(tenant_a, "m3"))
        event, payload = await alice.next()
        assert (event, payload["id"], payload["seq"]) == ("message:new", "m3", 3)
        again = await relay.sequencer.assign(tenant_id=tenant_a, event_id=first.id, event="message:new",
                                             payload=first.data)
        assert (again.seq, again.emitted) == (1, True)

        # a crash after the seq was assigned but before the emit: the redelivered record is emitted with that seq
        crashed = message(tenant_a, "m4")
        pending = await relay.sequencer.assign(tenant_id=tenant_a, event_id=crashed.id, event="message:new",
                                               payload=crashed.data)
        assert (pending.seq, pending.emitted) == (4, False)
        await produce(relay, crashed)
        event, payload = await alice.next()
        assert (event, payload["id"], payload["seq"]) == ("message:new", "m4", 4)

        # the other tenant's browser got none of it: its first event is its own, with its own seq 1
        marker = message(tenant_b, "b1")
        await produce(relay, marker)
        assert await bob.next() == ("message:new", {**marker.data, "seq": 1})
        assert bob.received.empty()

        # conversation events share the tenant's sequence
        await produce(relay, make_event("conversation.updated", tenant_id=tenant_a,
                                        data={"id": "conv-1", "status": "open", "unreadCount": 4}),
                      topic=relay.conversation_topic)
        assert await alice.next() == ("conversation:updated",
                                      {"id": "conv-1", "status": "open", "unreadCount": 4, "seq": 5})
        await produce(relay, make_event("message.status_changed", tenant_id=tenant_a,
                                        data={**message(tenant_a, "m2").data, "status": "READ"}))
        assert await alice.next() == ("message:status",
                                      {"messageId": "m2", "conversationId": "conv-1", "status": "READ", "seq": 6})
        assert alice.received.empty()

    buffered = await relay.sequencer.buffered(tenant_id=tenant_a)
    assert [(item.seq, item.event) for item in buffered] == [
        (1, "message:new"), (2, "message:new"), (3, "message:new"), (4, "message:new"),
        (5, "conversation:updated"), (6, "message:status")]
    assert buffered[0].event_id == first.id and buffered[0].payload == {**first.data, "seq": 1}
    assert [item.seq for item in await relay.sequencer.buffered(tenant_id=tenant_a, after_seq=4)] == [5, 6]
    ttl = await redis.ttl(event_key(first.id))
    assert 0 < ttl <= 3600


async def test_issue4_events_reach_the_tenant_room_in_one_sequence(relay: Relay, browser: Any) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    async with browser(f"tenant:{tenant}") as alice:
        updated = {**message(tenant, "m-media").data, "type": "image",
                   "media": {"status": "ready", "mimeType": "image/jpeg", "size": 4, "sha256": "ab"}}
        await produce(relay, make_event("message.updated", tenant_id=tenant, data=updated))
        assert await alice.next() == ("message:updated", {**updated, "seq": 1})

        await produce(relay, make_event("conversation.assigned", tenant_id=tenant, data={
            "conversationId": "conv-1", "attendantId": "u-2", "previousAttendantId": "u-1"}),
            topic=relay.conversation_topic)
        assert await alice.next() == ("conversation:assigned",
                                      {"conversationId": "conv-1", "attendantId": "u-2", "seq": 2})

        escalation = {"id": "e-1", "conversationId": "conv-1", "reason": "noise", "priority": "high",
                      "status": "open"}
        raised = make_event("escalation.raised", tenant_id=tenant, data=escalation)
        await produce(relay, raised, topic=relay.conversation_topic)
        assert await alice.next() == ("escalation:raised", {**escalation, "seq": 3})
        await produce(relay, raised, topic=relay.conversation_topic)  # redelivered: not emitted again
        acknowledged = {**escalation, "status": "acknowledged", "acknowledgedBy": "u-2"}
        await produce(relay, make_event("escalation.updated", tenant_id=tenant, data=acknowledged),
                      topic=relay.conversation_topic)
        assert await alice.next() == ("escalation:updated", {**acknowledged, "seq": 4})
        assert alice.received.empty()


async def test_an_assignment_reaches_the_assignee_in_the_user_room_once(relay: Relay, browser: Any) -> None:
    tenant, assignee = f"tenant-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"

    async def assign(conversation_id: str, attendant_id: str | None) -> None:
        data = ConversationAssigned(conversation_id=conversation_id, attendant_id=attendant_id,
                                    previous_attendant_id=None)
        await produce(relay, make_event(CONVERSATION_ASSIGNED, tenant_id=tenant, data=data),
                      topic=relay.conversation_topic)

    def assigned(conversation_id: str, attendant_id: str | None, seq: int) -> tuple[str, dict[str, Any]]:
        return "conversation:assigned", {"conversationId": conversation_id, "attendantId": attendant_id, "seq": seq}

    async with (browser(f"tenant:{tenant}") as colleague, browser(f"user:{assignee}") as alone,
                browser(f"tenant:{tenant}") as signed_in):
        assert await signed_in.client.call("test:join", {"room": f"user:{assignee}"}, timeout=10) is True
        await assign("conv-1", assignee)
        await assign("conv-2", None)  # unassigned: the tenant's room only
        await assign("conv-3", assignee)
        for socket in (colleague, signed_in):  # in the tenant's room (one of them in the user's too): each once
            assert [await socket.next() for _ in range(3)] == [
                assigned("conv-1", assignee, 1), assigned("conv-2", None, 2), assigned("conv-3", assignee, 3)]
        # only in the user's room: its assignments, not the tenant's other events
        assert [await alone.next() for _ in range(2)] == [assigned("conv-1", assignee, 1),
                                                          assigned("conv-3", assignee, 3)]
        assert colleague.received.empty() and signed_in.received.empty() and alone.received.empty()


async def test_sequence_has_no_gaps_under_concurrency_and_the_buffer_is_bounded(redis: Redis) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    sequencer = RedisSequencer(redis=redis, buffer_size=10, dedupe_ttl_seconds=60)
    event_ids = [str(uuid.uuid4()) for _ in range(40)]
    # every event assigned twice, concurrently: 40 distinct seqs, each event id always getting the same one
    results = await asyncio.gather(*(
        sequencer.assign(tenant_id=tenant, event_id=event_id, event="message:new", payload={"id": event_id})
        for event_id in event_ids + event_ids))
    first, second = results[:40], results[40:]
    assert sorted(item.seq for item in first) == list(range(1, 41))
    assert [item.seq for item in first] == [item.seq for item in second]
    buffered = await sequencer.buffered(tenant_id=tenant)
    assert [item.seq for item in buffered] == list(range(31, 41))
    assert await redis.zcard(replay_key(tenant)) == 10
    for item in buffered:
        assert item.payload["seq"] == item.seq
