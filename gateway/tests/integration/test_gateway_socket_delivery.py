"""Seq-bearing events through two real gateway replicas on one Redis channel, emitted like the realtime service
(real RedisSequencer + write-only manager): once and in order despite duplicates, reordering and lost publishes;
`resume` on the other replica; too-old resumes; tenant isolation; presence; the per-socket rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import wait_until

pytestmark = pytest.mark.integration


def _seqs(probe: Any, name: str = "message:new") -> list[int]:
    return [data["seq"] for data in probe.all_of(name)]


async def _until_seqs(probe: Any, expected: list[int], name: str = "message:new") -> None:
    async def arrived() -> bool:
        return len(_seqs(probe, name)) >= len(expected)

    await wait_until(arrived, what=f"{len(expected)} {name} events")
    assert _seqs(probe, name) == expected


@pytest.fixture
async def replicas(gateway: Any, gateway_factory: Callable[..., Any], wait_subscribed: Callable[..., Any]) -> Any:
    second = await gateway_factory(socketio_channel=gateway.settings.socketio_channel)
    return gateway, second


async def test_each_event_reaches_each_client_once_and_in_order(
    replicas: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    first, second = replicas
    account = make_account()
    colleague = make_account(tenant_id=account.tenant_id)
    alice, bob = sockets(), sockets()
    await alice.connect(first.url, token=account.token)
    await bob.connect(second.url, token=colleague.token)
    await wait_subscribed(first.settings.socketio_channel, minimum=2)
    emitter = realtime()
    tenant = account.tenant_id

    one = await emitter.emit(tenant, "message:new", {"id": "m1"})
    await emitter.publish(tenant, "message:new", one)  # at-least-once: a duplicate
    two, three = await emitter.assign(tenant, "message:new", {"id": "m2"}), await emitter.assign(
        tenant, "message:new", {"id": "m3"})
    await emitter.publish(tenant, "message:new", three)  # two relays: out of order
    await emitter.publish(tenant, "message:new", two)
    await emitter.assign(tenant, "message:new", {"id": "m4"})  # lost publish ...
    await emitter.emit(tenant, "message:new", {"id": "m5"})  # ... then the next one
    for probe in (alice, bob):
        await _until_seqs(probe, [1, 2, 3, 4, 5])

    await emitter.assign(tenant, "message:new", {"id": "m6"})  # lost, nothing after it: the catch-up delivers it
    for probe in (alice, bob):
        await _until_seqs(probe, [1, 2, 3, 4, 5, 6])
    await emitter.emit(tenant, "message:new", {"id": "m7"})
    for probe in (alice, bob):
        await _until_seqs(probe, [1, 2, 3, 4, 5, 6, 7])
        assert [data["id"] for data in probe.all_of("message:new")] == [f"m{i}" for i in range(1, 8)]
        assert "resync:required" not in probe.names()


async def test_resume_on_the_other_replica_replays_exactly_what_was_missed(
    replicas: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    first, second = replicas
    account = make_account()
    emitter = realtime()
    before = sockets()
    await before.connect(first.url, token=account.token)
    await wait_subscribed(first.settings.socketio_channel)
    await emitter.emit(account.tenant_id, "message:new", {"id": "m1"})
    await emitter.emit(account.tenant_id, "conversation:updated", {"id": "c1"})
    await _until_seqs(before, [2], "conversation:updated")
    await before.close()  # the connection drops ...
    missed = [await emitter.emit(account.tenant_id, "message:status", {"messageId": f"m{i}"}) for i in range(3)]

    after = sockets()  # ... and comes back on the other replica
    await after.connect(second.url, token=account.token)
    assert await after.call("resume", {"lastSeq": 2}) == {"ok": True, "replayed": 3}
    assert after.all_of("message:status") == missed  # the original events, in order, before the ack
    await wait_subscribed(first.settings.socketio_channel, minimum=2)
    live = await emitter.emit(account.tenant_id, "message:new", {"id": "m9"})
    assert await after.next_event("message:new") == live
    assert await after.call("resume", {"lastSeq": 6}) == {"ok": True, "replayed": 0}
    assert _seqs(after, "message:status") == [3, 4, 5] and _seqs(after) == [6]


async def test_live_events_during_a_resume_are_neither_lost_nor_doubled(
    replicas: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    first, _ = replicas
    account = make_account()
    emitter = realtime()
    for i in range(40):
        await emitter.emit(account.tenant_id, "message:new", {"id": f"old{i}"})
    probe = sockets()
    await probe.connect(first.url, token=account.token)
    await wait_subscribed(first.settings.socketio_channel)

    async def live() -> None:
        for i in range(40):
            await emitter.emit(account.tenant_id, "message:new", {"id": f"new{i}"})

    ack, _ = await asyncio.gather(probe.call("resume", {"lastSeq": 0}), live())
    assert ack["ok"] is True
    await wait_until(lambda: _async(len(_seqs(probe)) >= 80), what="80 events")
    assert sorted(_seqs(probe)) == list(range(1, 81))


async def _async(value: bool) -> bool:
    return value


async def test_a_resume_older_than_the_buffer_requires_a_resync(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    account = make_account()
    emitter = realtime(buffer_size=3)
    for i in range(6):
        await emitter.emit(account.tenant_id, "message:new", {"id": f"m{i}"})
    probe = sockets()
    await probe.connect(gateway.url, token=account.token)

    assert await probe.call("resume", {"lastSeq": 1}) == {"ok": False, "code": "RESYNC_REQUIRED"}
    assert await probe.next_event("resync:required") == {"currentSeq": 6}
    assert await probe.call("resume", {"lastSeq": 3}) == {"ok": True, "replayed": 3}  # 4..6 still buffered
    assert await probe.call("resume", {"lastSeq": 99}) == {"ok": False, "code": "RESYNC_REQUIRED"}  # ahead
    for payload in (None, {}, {"lastSeq": -1}, {"lastSeq": "3"}, {"lastSeq": True}, {"lastSeq": 1.5}, [3]):
        assert await probe.call("resume", payload) == {"ok": False, "code": "VALIDATION_FAILED"}
    assert probe.client.connected


async def test_no_event_reaches_another_tenant_also_not_by_resume(
    replicas: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    first, second = replicas
    hotel_a, hotel_b = make_account(), make_account()
    emitter = realtime()
    a, b = sockets(), sockets()
    await a.connect(first.url, token=hotel_a.token)
    await b.connect(second.url, token=hotel_b.token)
    await wait_subscribed(first.settings.socketio_channel, minimum=2)
    for i in range(3):
        await emitter.emit(hotel_a.tenant_id, "message:new", {"id": f"a{i}"})
    mine = await emitter.emit(hotel_b.tenant_id, "message:new", {"id": "b0"})
    await _until_seqs(a, [1, 2, 3])
    assert await b.next_event("message:new") == mine

    assert await b.call("resume", {"lastSeq": 0}) == {"ok": True, "replayed": 0}  # b's own 1 was delivered live
    assert [data["id"] for data in b.all_of("message:new")] == ["b0"]
    assert all(data["id"].startswith("a") for data in a.all_of("message:new"))


async def test_reauthenticating_as_another_tenant_restarts_the_sequence(
    gateway: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], realtime: Callable[..., Any],
    wait_subscribed: Callable[..., Any]
) -> None:
    hotel_a, hotel_b = make_account(), make_account()
    emitter = realtime()
    for i in range(5):
        await emitter.emit(hotel_b.tenant_id, "message:new", {"id": f"b{i}"})
    probe = sockets()
    await probe.connect(gateway.url, token=hotel_a.token)
    await wait_subscribed(gateway.settings.socketio_channel)
    await emitter.emit(hotel_a.tenant_id, "message:new", {"id": "a0"})
    await _until_seqs(probe, [1])

    assert (await probe.call("authenticate", {"token": hotel_b.token}))["ok"] is True
    await emitter.emit(hotel_a.tenant_id, "message:new", {"id": "a1"})  # no longer this socket's tenant
    later = await emitter.emit(hotel_b.tenant_id, "message:new", {"id": "b5"})
    await _until_seqs(probe, [1, 6])
    assert probe.all_of("message:new")[-1] == later
    assert await probe.call("resume", {"lastSeq": 4}) == {"ok": True, "replayed": 1}
    assert probe.all_of("message:new")[-1]["id"] == "b4"


async def test_presence_is_announced_once_across_replicas(
    replicas: Any, sockets: Callable[[], Any], make_account: Callable[..., Any], wait_subscribed: Callable[..., Any]
) -> None:
    first, second = replicas
    watcher = make_account()
    user = make_account(tenant_id=watcher.tenant_id)
    outsider = make_account()
    observer, stranger = sockets(), sockets()
    await observer.connect(first.url, token=watcher.token)
    await stranger.connect(second.url, token=outsider.token)
    await wait_subscribed(first.settings.socketio_channel, minimum=2)

    laptop, phone = sockets(), sockets()
    await laptop.connect(first.url, token=user.token)
    await phone.connect(second.url, token=user.token)
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
        listed = await http.get("/api/presence", headers={"Authorization": f"Bearer {watcher.token}"})
        assert listed.status_code == 200
        assert listed.json() == {"online": sorted([watcher.user_id, user.user_id])}
        assert (await http.get("/api/presence")).status_code == 401
    await laptop.close()
    await phone.close()

    offline = {"userId": user.user_id, "online": False}

    async def gone() -> bool:
        return offline in observer.all_of("presence:update")

    await wait_until(gone, what="the offline announcement")
    announced = [data for data in observer.all_of("presence:update") if data["userId"] == user.user_id]
    assert announced == [{"userId": user.user_id, "online": True}, offline]
    assert all(data["userId"] == outsider.user_id for data in stranger.all_of("presence:update"))


async def test_client_events_are_rate_limited_per_socket(
    gateway_factory: Callable[..., Any], sockets: Callable[[], Any], make_account: Callable[..., Any]
) -> None:
    running = await gateway_factory(socket_events_per_second=0.5, socket_event_burst=2)
    account = make_account()
    busy, other = sockets(), sockets()
    await busy.connect(running.url, token=account.token)
    await other.connect(running.url)
    assert await busy.call("leave:conversation", {"conversationId": "c"}) == {"ok": True}
    assert await busy.call("nonsense", {}) == {"ok": False, "code": "UNKNOWN_EVENT"}
    limited = await busy.call("resume", {"lastSeq": 0})
    assert limited["ok"] is False and limited["code"] == "RATE_LIMITED" and limited["retryAfterMs"] > 0
    assert (await busy.call("nonsense", {}))["code"] == "RATE_LIMITED"

    assert (await other.call("authenticate", {"token": "x"}))["code"] == "TOKEN_INVALID"
    assert (await other.call("authenticate", {"token": "x"}))["code"] == "TOKEN_INVALID"
    assert (await other.call("authenticate", {"token": account.token}))["code"] == "RATE_LIMITED"
    assert busy.client.connected
