"""Issue 5 with the frontend's own client (socket.io-client@4 under Node): the Socket.io channel misbehaves the ways
Redis pub/sub and an at-least-once relay can (a duplicate publish, an out-of-order pair, a publish lost with nothing
after it) and every client, on both gateway replicas, still gets each seq-bearing event once and in order.

The faults are injected as the realtime service would cause them: seqs assigned with its RedisSequencer (the
tenant's sequence and replay buffer) and published (or not) with a write-only Socket.io Redis manager on the
stack's channel. The same way, a tenant gets more events than its replay buffer keeps, to resume at the buffer's edge
(paged through by the gateway) and one past it (RESYNC_REQUIRED)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import socketio
from e2e_support import StackUrls, register_hotel
from eva_common.realtime.rooms import tenant_room
from eva_common.realtime.sequence import RedisSequencer
from eva_testing.infra import test_infra
from js_client import WEBSOCKET_ONLY, JsDriver, JsSocket
from realtime_support import assert_consecutive, guest_message, seqs, settled
from redis.asyncio import Redis

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CHANNEL = "eva-socketio"  # docs/conventions.md "Socket.io"; the stack's gateways and realtime use it
BUFFER = 1000  # the realtime service's EVA_REPLAY_BUFFER_SIZE default: events kept per tenant
CATCH_UP_DEADLINE = 20.0  # the gateway's periodic catch-up runs every 2 s (EVA_SOCKET_CATCH_UP_INTERVAL_SECONDS)


class FaultyRelay:
    """Assigns seqs like the realtime service and publishes when and how a test says."""

    def __init__(self, redis: Redis, manager: Any) -> None:
        self._sequencer = RedisSequencer(redis=redis, buffer_size=BUFFER, dedupe_ttl_seconds=3600)
        self._manager = manager

    async def assign(self, tenant_id: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The event with its new seq, in the tenant's buffer, not published."""
        assignment = await self._sequencer.assign(tenant_id=tenant_id, event_id=uuid.uuid4().hex, event=event,
                                                  payload=payload)
        return {**payload, "seq": assignment.seq}

    async def publish(self, tenant_id: str, event: str, payload: dict[str, Any]) -> None:
        await self._manager.emit(event, data=payload, room=tenant_room(tenant_id))


@pytest_asyncio.fixture(loop_scope="session")
async def relay() -> AsyncIterator[FaultyRelay]:
    url = test_infra().redis_url
    redis = Redis.from_url(url)
    manager = socketio.AsyncRedisManager(url, channel=CHANNEL, write_only=True)
    try:
        yield FaultyRelay(redis, manager)
    finally:
        await redis.aclose()
        with contextlib.suppress(Exception):
            await manager.redis.aclose()


def synthetic(conversation: dict[str, Any], n: int) -> dict[str, Any]:
    """A `conversation:updated` of the test's own conversation (its REST object, another preview)."""
    return {**{k: v for k, v in conversation.items() if k != "seq"}, "lastMessagePreview": f"synthetic {n}"}


async def seq_arrives(socket: JsSocket, seq: int, timeout: float = 15.0) -> dict[str, Any]:
    data: dict[str, Any] = await socket.wait_for("conversation:updated", lambda d: d.get("seq") == seq, timeout)
    return data


async def test_duplicates_reordering_and_lost_publishes_reach_each_client_once_in_order(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver, relay: FaultyRelay
) -> None:
    hotel = await register_hotel(http, stack)
    tenant = hotel.tenant["id"]
    clients = [js.socket("replica-1"), js.socket("replica-2")]
    await clients[0].connect(stack.gateway, hotel.access_token)
    await clients[1].connect(stack.gateway_replica, hotel.access_token, transports=WEBSOCKET_ONLY)
    message = await guest_message(http, stack, hotel, clients[0], "the real one")
    conversation = await settled(clients[0], message)
    for client in clients:
        await settled(client, message)

    # 1. the relay publishes the message again (at-least-once): nobody gets it twice
    await relay.publish(tenant, "message:new", message.event)
    marker = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 1))
    await relay.publish(tenant, "conversation:updated", marker)
    for client in clients:
        assert await seq_arrives(client, marker["seq"]) == marker
        assert [d["wamid"] for d in client.events("message:new")] == [message.wamid], client.name

    # 2. two relays publish a pair out of order: each client gets them in order (the gap filled from the buffer)
    earlier = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 2))
    later = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 3))
    await relay.publish(tenant, "conversation:updated", later)
    await relay.publish(tenant, "conversation:updated", earlier)
    for client in clients:
        assert await seq_arrives(client, later["seq"]) == later
        got = [d["seq"] for d in client.events("conversation:updated")]
        assert got.index(earlier["seq"]) < got.index(later["seq"]) and got.count(later["seq"]) == 1, got

    # 3. a publish is lost and nothing follows it: the periodic catch-up still delivers it, once
    lost = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 4))
    for client in clients:
        assert await seq_arrives(client, lost["seq"], timeout=CATCH_UP_DEADLINE) == lost

    # 4. a publish is lost and the next one arrives: both, in order
    lost_again = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 5))
    following = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 6))
    await relay.publish(tenant, "conversation:updated", following)
    for client in clients:
        assert await seq_arrives(client, following["seq"]) == following

    for client in clients:
        assert_consecutive(seqs(client.seq_events()), client.name)
        assert [r.data for r in client.seq_events()][-6:] == [marker, earlier, later, lost, lost_again, following]
        assert client.events("resync:required") == []


async def test_resume_pages_through_the_whole_buffer_and_no_further(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver, relay: FaultyRelay
) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    tenant = hotel.tenant["id"]
    conversation = {"id": str(uuid.uuid4()), "tenantId": tenant, "status": "open", "unreadCount": 0}
    # more events than the buffer keeps (nobody connected: all of them are missed)
    assigned = [await relay.assign(tenant, "conversation:updated", synthetic(conversation, n))
                for n in range(BUFFER + 100)]
    current = assigned[-1]["seq"]
    oldest = current - BUFFER + 1  # the oldest seq still buffered

    # a client that saw everything up to just before the oldest buffered event gets all of the buffer, in order
    resumer = js.socket("resumer")
    await resumer.connect(stack.gateway_replica, hotel.access_token)
    ack, mark = await resumer.emit_acked_at("resume", {"lastSeq": oldest - 1}, timeout=30)
    assert ack == {"ok": True, "replayed": BUFFER}, ack
    replayed = resumer.seq_events(upto=mark)
    assert seqs(replayed) == list(range(oldest, current + 1))
    assert [r.data for r in replayed] == assigned[-BUFFER:]
    assert {r.event for r in replayed} == {"conversation:updated"}

    # one event further back is no longer buffered: resync
    behind = js.socket("too-far-behind")
    await behind.connect(stack.gateway, hotel.access_token)
    assert await behind.emit_with_ack("resume", {"lastSeq": oldest - 2}) == {"ok": False, "code": "RESYNC_REQUIRED"}
    assert await behind.wait_for("resync:required") == {"currentSeq": current}
    assert behind.seq_events() == []


async def test_live_events_during_a_resume_are_neither_lost_nor_doubled(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver, relay: FaultyRelay
) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    tenant = hotel.tenant["id"]
    conversation = {"id": str(uuid.uuid4()), "tenantId": tenant, "status": "open", "unreadCount": 0}
    missed = [await relay.assign(tenant, "conversation:updated", synthetic(conversation, n)) for n in range(600)]
    client = js.socket("resuming-under-load")
    await client.connect(stack.gateway, hotel.access_token)

    async def live_stream() -> list[dict[str, Any]]:
        sent = []
        for n in range(150):
            event = await relay.assign(tenant, "conversation:updated", synthetic(conversation, 1000 + n))
            await relay.publish(tenant, "conversation:updated", event)
            sent.append(event)
        return sent

    (ack, _), live = await asyncio.gather(client.emit_acked_at("resume", {"lastSeq": 0}, timeout=30), live_stream())
    assert ack["ok"] is True and ack["replayed"] >= len(missed), ack
    final = live[-1]["seq"]
    await seq_arrives(client, final, timeout=CATCH_UP_DEADLINE)
    got = seqs(client.seq_events())
    assert sorted(got) == list(range(1, final + 1)), "every event, each once"
    by_seq = {r.data["seq"]: r.data for r in client.seq_events()}
    assert [by_seq[event["seq"]] for event in missed + live] == missed + live
    assert client.events("resync:required") == []
