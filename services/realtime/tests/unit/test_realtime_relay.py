"""The relay with fakes: one seq per event id, emitted once, re-emitted with the same seq only if it never went out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eva_common.errors import InvalidArgument, Unavailable
from eva_common.kafka.consumer import ConsumedRecord
from eva_common.realtime.sequence import Assignment, SeqRequest
from eva_events.envelope import EventEnvelope, make_event
from prometheus_client import REGISTRY
from realtime_service.handlers import event_handler
from realtime_service.mapping import Rooms
from realtime_service.service import RealtimeRelay
from redis.exceptions import ConnectionError as RedisConnectionError


class FakeSequencer:
    """In-memory model of the Redis script's contract."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.states: dict[str, tuple[int, bool]] = {}
        self.failure: Exception | None = None

    async def assign(self, *, tenant_id: str, event_id: str, event: str, payload: dict[str, Any]) -> Assignment:
        if self.failure is not None:
            raise self.failure
        if event_id in self.states:
            seq, emitted = self.states[event_id]
            return Assignment(seq=seq, emitted=emitted)
        self.counters[tenant_id] = self.counters.get(tenant_id, 0) + 1
        self.states[event_id] = (self.counters[tenant_id], False)
        return Assignment(seq=self.counters[tenant_id], emitted=False)

    async def mark_emitted(self, *, event_id: str, seq: int) -> None:
        if self.states.get(event_id) == (seq, False):
            self.states[event_id] = (seq, True)

    async def assign_many(self, requests: Sequence[SeqRequest]) -> list[Assignment]:
        return [await self.assign(tenant_id=r.tenant_id, event_id=r.event_id, event=r.event, payload=r.payload)
                for r in requests]

    async def mark_emitted_many(self, emitted: Sequence[tuple[str, int]]) -> None:
        for event_id, seq in emitted:
            await self.mark_emitted(event_id=event_id, seq=seq)


class FakeEmitter:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any], Rooms]] = []
        self.fail_next = False

    async def emit(self, event: str, payload: dict[str, Any], *, room: Rooms) -> None:
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("redis down")
        self.emitted.append((event, payload, room))

    async def emit_many(self, emits: Sequence[tuple[str, dict[str, Any], Rooms]]) -> None:
        for event, payload, room in emits:
            await self.emit(event, payload, room=room)


def message(tenant_id: str, body: str) -> EventEnvelope:
    return make_event("message.received", tenant_id=tenant_id, data={"id": body, "conversationId": "c-1"})


async def test_each_tenant_gets_its_own_gapless_sequence() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    for envelope in (message("a", "m1"), message("b", "m2"), message("a", "m3")):
        await relay.relay(envelope)
    assert [(p["id"], p["seq"], room) for _, p, room in emitter.emitted] == [
        ("m1", 1, "tenant:a"), ("m2", 1, "tenant:b"), ("m3", 2, "tenant:a")]
    assert emitter.emitted[0][1] == {"id": "m1", "conversationId": "c-1", "seq": 1}


async def test_a_redelivered_event_keeps_its_seq_and_is_not_emitted_again() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    event = message("a", "m1")
    first = await relay.relay(event)
    again = await relay.relay(event)
    assert first is not None and again is not None
    assert (first.seq, first.emitted) == (1, True)
    assert (again.seq, again.emitted) == (1, False)
    assert len(emitter.emitted) == 1


async def test_an_event_whose_emit_failed_is_emitted_with_the_same_seq_on_redelivery() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    event = message("a", "m1")
    emitter.fail_next = True
    with pytest.raises(Unavailable):
        await relay.relay(event)
    assert emitter.emitted == []
    await relay.relay(message("a", "m2"))  # another event meanwhile takes the next seq
    retried = await relay.relay(event)
    assert retried is not None and (retried.seq, retried.emitted) == (1, True)
    assert sorted(p["seq"] for _, p, _ in emitter.emitted) == [1, 2]


async def test_an_assignment_is_emitted_once_to_the_tenant_and_the_assignee_with_one_seq() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    await relay.relay(message("a", "m1"))
    relayed = await relay.relay(make_event("conversation.assigned", tenant_id="a", data={
        "conversationId": "c-1", "attendantId": "u-2", "previousAttendantId": None}))
    assert relayed is not None and (relayed.seq, relayed.room) == (2, "tenant:a")
    assert emitter.emitted[1:] == [
        ("conversation:assigned", {"conversationId": "c-1", "attendantId": "u-2", "seq": 2}, ["tenant:a", "user:u-2"])]
    assert sequencer.counters == {"a": 2}


async def test_events_the_browser_does_not_see_take_no_seq() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    assert await relay.relay(make_event("tenant.created", tenant_id="a", data={})) is None
    assert sequencer.counters == {} and emitter.emitted == []


async def test_an_event_without_tenant_is_refused() -> None:
    relay = RealtimeRelay(sequencer=FakeSequencer(), emitter=FakeEmitter())
    with pytest.raises(InvalidArgument):
        await relay.relay(make_event("message.received", tenant_id="", data={"id": "m"}))


def record(value: bytes) -> ConsumedRecord:
    return ConsumedRecord(topic="messaging.events.v1", partition=0, offset=3, key=b"c-1", value=value, headers={},
                          timestamp_ms=0)


async def test_handler_refuses_undecodable_records_and_maps_redis_failures_to_transient() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    handle = event_handler(relay=RealtimeRelay(sequencer=sequencer, emitter=emitter))
    with pytest.raises(InvalidArgument):
        await handle(record(b"{not an envelope"))
    sequencer.failure = RedisConnectionError("connection refused")
    with pytest.raises(Unavailable):
        await handle(record(message("a", "m1").to_bytes()))
    sequencer.failure = None
    await handle(record(message("a", "m1").to_bytes()))
    assert len(emitter.emitted) == 1


async def test_a_batch_is_numbered_in_order_emitted_together_and_answered_event_by_event() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    seen_before = message("a", "m0")
    await relay.relay(seen_before)
    emitter.emitted.clear()
    batch = [message("a", "m1"), make_event("tenant.created", tenant_id="a", data={}), message("b", "m2"),
             seen_before, message("a", "m3")]

    outcomes = await relay.relay_many(batch)

    assert [(p["id"], p["seq"], room) for _, p, room in emitter.emitted] == [
        ("m1", 2, "tenant:a"), ("m2", 1, "tenant:b"), ("m3", 3, "tenant:a")]
    assert [(o.seq, o.emitted) if o else None for o in outcomes] == [(2, True), None, (1, True), (1, False),
                                                                       (3, True)]
    assert all(sequencer.states[e.id][1] for e in batch if e.type == "message.received")  # all marked emitted


async def test_a_batch_with_an_event_naming_no_tenant_emits_nothing() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    with pytest.raises(InvalidArgument):
        await relay.relay_many([message("a", "m1"), make_event("message.received", tenant_id="", data={"id": "x"})])
    assert emitter.emitted == [] and sequencer.states == {}  # refused before any seq was taken


async def test_a_second_copy_of_an_event_in_the_same_batch_is_not_emitted_again() -> None:
    sequencer, emitter = FakeSequencer(), FakeEmitter()
    relay = RealtimeRelay(sequencer=sequencer, emitter=emitter)
    event = message("a", "m1")

    outcomes = await relay.relay_many([event, message("a", "m2"), event])

    assert [(p["id"], p["seq"]) for _, p, _ in emitter.emitted] == [("m1", 1), ("m2", 2)]
    assert [(o.seq, o.emitted) if o else None for o in outcomes] == [(1, True), (2, True), (1, False)]


async def test_the_emit_delay_counts_from_the_events_occurrence_and_only_first_emissions() -> None:
    """eva_realtime_emit_delay_seconds, the "guest message visible" objective's series."""
    relay = RealtimeRelay(sequencer=FakeSequencer(), emitter=FakeEmitter())
    envelope = message("a", "late").model_copy(update={"occurred_at": datetime.now(UTC) - timedelta(seconds=2)})
    labels = {"event": "message:new"}
    count_before = REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_count", labels) or 0.0
    sum_before = REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_sum", labels) or 0.0
    within_1s_before = REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_bucket", {**labels, "le": "1.0"})
    await relay.relay(envelope)
    await relay.relay(envelope)  # a redelivery: not emitted again, not observed again
    assert REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_count", labels) == count_before + 1
    assert 2 <= (REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_sum", labels) or 0.0) - sum_before < 5
    assert REGISTRY.get_sample_value("eva_realtime_emit_delay_seconds_bucket",
                                     {**labels, "le": "1.0"}) == (within_1s_before or 0.0)
