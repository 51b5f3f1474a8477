"""The delivery gate's decisions per socket (a fake replay buffer and a recording sink; no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

from eva_common.realtime.sequence import BufferedEvent, Replay
from gateway.socket_delivery import RESYNC_EVENT, SocketDelivery
from gateway.socket_limits import SocketRateLimits, TokenBucket

ROOM = "tenant:t1"


class FakeBuffer:
    """A tenant's sequence with the last `keep` events buffered."""

    def __init__(self, *, keep: int = 100) -> None:
        self.seq = 0
        self.keep = keep
        self.events: list[BufferedEvent] = []

    def add(self) -> dict[str, Any]:
        self.seq += 1
        payload = {"id": f"m{self.seq}", "seq": self.seq}
        self.events = [*self.events, BufferedEvent(seq=self.seq, event="message:new", event_id=f"e{self.seq}",
                                                   payload=payload)][-self.keep:]
        return payload

    async def current(self, tenant_id: str) -> int:
        return self.seq

    async def after(self, *, tenant_id: str, after_seq: int, limit: int = 1000) -> list[BufferedEvent]:
        return [event for event in self.events if event.seq > after_seq][:limit]

    async def replay(self, *, tenant_id: str, after_seq: int, limit: int = 1000) -> Replay:
        events = await self.after(tenant_id=tenant_id, after_seq=after_seq, limit=limit)
        if after_seq > self.seq:
            return Replay(events=[], complete=False, current=self.seq)
        if after_seq == self.seq:
            return Replay(events=[], complete=True, current=self.seq)
        complete = bool(events) and events[0].seq == after_seq + 1
        return Replay(events=events if complete else [], complete=complete, current=self.seq)


class Sink:
    def __init__(self) -> None:
        self.room: list[str] = []
        self.received: dict[str, list[tuple[str, Any]]] = {}
        self.broadcasts = 0

    def members(self, room: str) -> list[str]:
        return list(self.room)

    async def broadcast(self, event: str, data: Any, *, room: str, skip: list[str]) -> None:
        self.broadcasts += 1
        for sid in self.room:
            if sid not in skip:
                self.received.setdefault(sid, []).append((event, data))

    async def send(self, sid: str, event: str, data: Any) -> None:
        self.received.setdefault(sid, []).append((event, data))

    def seqs(self, sid: str) -> list[int]:
        return [data["seq"] for event, data in self.received.get(sid, []) if event == "message:new"]


async def _gate(buffer: FakeBuffer, *sids: str, page_size: int = 500) -> tuple[SocketDelivery, Sink]:
    sink = Sink()
    delivery = SocketDelivery(replay=buffer, sink=sink, page_size=page_size)
    for sid in sids:
        await delivery.track(sid, tenant_id="t1", user_id=f"u-{sid}")
        sink.room.append(sid)
    return delivery, sink


async def _publish(delivery: SocketDelivery, payload: dict[str, Any]) -> None:
    await delivery.publish(tenant_id="t1", room=ROOM, event="message:new", payload=payload, seq=payload["seq"])


async def _settle(delivery: SocketDelivery) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
    await delivery.close()


async def test_in_order_events_go_out_in_one_broadcast_and_duplicates_are_dropped() -> None:
    buffer = FakeBuffer()
    delivery, sink = await _gate(buffer, "a", "b")
    first, second = buffer.add(), buffer.add()
    for payload in (first, first, second, first, second):
        await _publish(delivery, payload)
    assert sink.seqs("a") == sink.seqs("b") == [1, 2]
    assert sink.broadcasts == 2


async def test_a_gap_is_filled_from_the_buffer_in_order_and_the_late_one_is_not_doubled() -> None:
    buffer = FakeBuffer()
    delivery, sink = await _gate(buffer, "a")
    first, second, third = buffer.add(), buffer.add(), buffer.add()
    await _publish(delivery, third)  # 1 and 2 lost or late
    await _publish(delivery, first)
    await _publish(delivery, second)
    await _settle(delivery)
    assert sink.seqs("a") == [1, 2, 3]


async def test_a_socket_in_order_still_gets_the_broadcast_while_another_fills_its_gap() -> None:
    buffer = FakeBuffer()
    delivery, sink = await _gate(buffer, "a")
    buffer.add()
    await delivery.track("b", tenant_id="t1", user_id="u-b")  # b starts at 1, a at 0
    sink.room.append("b")
    second = buffer.add()
    await _publish(delivery, second)
    await _settle(delivery)
    assert sink.seqs("b") == [2]
    assert sink.seqs("a") == [1, 2]


async def test_a_gap_older_than_the_buffer_is_a_resync_to_the_current_seq() -> None:
    buffer = FakeBuffer(keep=2)
    delivery, sink = await _gate(buffer, "a")
    payloads = [buffer.add() for _ in range(5)]
    await _publish(delivery, payloads[-1])
    await _settle(delivery)
    assert sink.received["a"] == [(RESYNC_EVENT, {"currentSeq": 5})]
    delivery, sink = await _gate(buffer, "a")  # from 5 on
    await _publish(delivery, buffer.add())
    assert sink.seqs("a") == [6]


async def test_the_catch_up_delivers_a_lost_event_with_nothing_after_it() -> None:
    buffer = FakeBuffer()
    delivery, sink = await _gate(buffer, "a")
    buffer.add()  # assigned, its publish lost
    assert await delivery.catch_up() == 0  # first sight of seq 1: it may still be on its way
    assert await delivery.catch_up() == 1
    await _settle(delivery)
    assert sink.seqs("a") == [1]


async def test_resume_pages_through_the_buffer_and_skips_what_the_socket_already_has() -> None:
    buffer = FakeBuffer()
    for _ in range(7):
        buffer.add()
    delivery, sink = await _gate(buffer, "a", page_size=2)  # signed in at 7
    await _publish(delivery, buffer.add())  # 8, live
    result = await delivery.resume("a", last_seq=3)
    assert (result.complete, result.replayed) == (True, 4)
    assert sink.seqs("a") == [8, 4, 5, 6, 7]
    assert (await delivery.resume("a", last_seq=8)).replayed == 0
    too_old = await delivery.resume("a", last_seq=1000)
    assert (too_old.complete, too_old.current) == (False, 8)
    assert sink.received["a"][-1] == (RESYNC_EVENT, {"currentSeq": 8})


async def test_a_socket_of_another_tenant_in_the_room_gets_nothing() -> None:
    buffer = FakeBuffer()
    delivery, sink = await _gate(buffer, "a")
    await delivery.track("x", tenant_id="t2", user_id="u-x")
    sink.room.append("x")
    await _publish(delivery, buffer.add())
    assert sink.seqs("a") == [1] and sink.seqs("x") == []


def test_the_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, tokens=3, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == 0.5
    assert bucket.take(0.5) == 0.0
    assert bucket.take(10.0) == 0.0  # refilled, capped at the burst
    assert bucket.tokens == 2


def test_socket_limits_are_per_socket() -> None:
    now = [0.0]
    limits = SocketRateLimits(events_per_second=1, burst=2, clock=lambda: now[0])
    assert [limits.retry_after_ms("a") for _ in range(3)] == [None, None, 1000]
    assert limits.retry_after_ms("b") is None
    now[0] = 1.0
    assert limits.retry_after_ms("a") is None
    limits.forget("a")
    assert limits.retry_after_ms("a") is None
