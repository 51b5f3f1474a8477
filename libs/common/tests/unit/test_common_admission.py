"""AdmissionGate: `limit` calls at once, waiters served in arrival order, a bounded wait, and a refusal that says
OVERLOADED (503, Retry-After) before the call did anything; no place is ever lost to a caller that went away."""

from __future__ import annotations

import asyncio

import pytest
from eva_common.admission import AdmissionGate
from eva_common.admission import _expire as expire
from eva_common.errors import Overloaded


async def _hold(gate: AdmissionGate, release: asyncio.Event, log: list[str], name: str,
                time_remaining: float | None = None) -> None:
    async with gate.admitted(time_remaining=time_remaining):
        log.append(name)
        await release.wait()


async def test_limit_calls_work_at_once_and_the_next_waits_for_a_place() -> None:
    gate = AdmissionGate("test-limit", limit=2, max_wait=5.0)
    release = asyncio.Event()
    log: list[str] = []
    tasks = [asyncio.create_task(_hold(gate, release, log, name)) for name in ("a", "b", "c")]
    await asyncio.sleep(0.05)
    assert log == ["a", "b"]
    assert (gate.active, gate.waiting) == (2, 1)
    release.set()
    await asyncio.gather(*tasks)
    assert log == ["a", "b", "c"]
    assert (gate.active, gate.waiting) == (0, 0)


async def test_waiters_are_served_in_arrival_order() -> None:
    gate = AdmissionGate("test-order", limit=1, max_wait=5.0)
    order: list[int] = []
    first = asyncio.Event()

    async def call(number: int) -> None:
        async with gate.admitted():
            order.append(number)
            if number == 0:
                await first.wait()

    tasks = [asyncio.create_task(call(0))]
    await asyncio.sleep(0.01)
    for number in range(1, 6):
        tasks.append(asyncio.create_task(call(number)))
        await asyncio.sleep(0)
    first.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]


async def test_a_call_that_waits_past_max_wait_is_refused_as_overloaded_and_holds_no_place() -> None:
    gate = AdmissionGate("test-shed", limit=1, max_wait=0.05, retry_after=2)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, release, [], "holder"))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Overloaded) as refused:
        async with gate.admitted():
            raise AssertionError("a shed call must not run")
    waited = loop.time() - started
    assert 0.04 <= waited < 1.0
    assert (refused.value.code, refused.value.http_status, refused.value.retry_after) == ("OVERLOADED", 503, 2)
    assert (gate.active, gate.waiting) == (1, 0)
    release.set()
    await holder
    assert gate.active == 0
    async with gate.admitted():  # the gate is whole again
        assert gate.active == 1


async def test_the_wait_is_at_most_half_of_the_callers_remaining_deadline() -> None:
    gate = AdmissionGate("test-deadline", limit=1, max_wait=10.0)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, release, [], "holder"))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Overloaded):
        async with gate.admitted(time_remaining=0.2):
            pass
    assert loop.time() - started < 0.5  # 0.1 s, not the gate's 10 s
    with pytest.raises(Overloaded):  # a deadline already gone: refused at once
        async with gate.admitted(time_remaining=0.0):
            pass
    release.set()
    await holder


async def test_a_caller_that_goes_away_while_waiting_loses_no_place() -> None:
    gate = AdmissionGate("test-cancel", limit=1, max_wait=5.0)
    release = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(gate, release, log, "holder"))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(_hold(gate, release, log, "gone"))
    await asyncio.sleep(0.01)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert gate.waiting == 0
    release.set()
    await holder
    assert log == ["holder"]
    assert gate.active == 0


async def test_a_place_handed_to_a_caller_cancelled_in_the_same_moment_is_given_back() -> None:
    gate = AdmissionGate("test-handover", limit=1, max_wait=5.0)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, release, [], "holder"))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(_hold(gate, asyncio.Event(), [], "waiter"))
    await asyncio.sleep(0.01)
    release.set()
    await holder  # hands its place to the waiter, which has not run yet
    waiter.cancel()  # ... and goes away before it does
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (gate.active, gate.waiting) == (0, 0)


async def test_a_caller_cancelled_as_its_wait_runs_out_gives_back_no_place_it_never_had() -> None:
    gate = AdmissionGate("test-expiry-cancel", limit=1, max_wait=0.02)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(gate, release, [], "holder"))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(_hold(gate, asyncio.Event(), [], "waiter"))
    await asyncio.sleep(0)  # the waiter is waiting
    expire(gate._waiters[0])  # its wait runs out (the timer fired) ...
    waiter.cancel()  # ... and the caller's deadline goes before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (gate.active, gate.waiting) == (1, 0)  # the holder's place, no more, no less
    release.set()
    await holder
    assert gate.active == 0


async def test_a_call_that_arrives_with_too_little_of_its_deadline_left_is_refused_even_with_places_free() -> None:
    gate = AdmissionGate("test-late", limit=4, max_wait=1.0, min_time_remaining=1.0)
    with pytest.raises(Overloaded):
        async with gate.admitted(time_remaining=0.9):
            raise AssertionError("a late call must not run")
    async with gate.admitted(time_remaining=1.1):
        assert gate.active == 1
    async with gate.admitted():  # no deadline: nothing to compare
        assert gate.active == 1
