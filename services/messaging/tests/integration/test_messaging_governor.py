"""The send governor on the test profile's real Redis: slots of one number are spaced `1 / (rate * headroom)` apart
whoever reserves them (two governors stand for two sender replicas), so no second holds more than the limit; a slot
too far ahead is refused, not queued; a pause pushes every replica's next slot back."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from eva_common.redis import create_redis
from messaging_service.governor import SendGovernor
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def redis(infra) -> AsyncIterator[Redis]:
    client = create_redis(infra.redis_url)
    yield client
    await client.aclose()


def per_second(times: list[float]) -> int:
    """The most sends in any sliding one-second window."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_two_replicas_never_exceed_the_numbers_rate_in_any_second(redis: Redis) -> None:
    number = f"pn-{uuid.uuid4().hex[:8]}"
    prefix = f"test:gov:{uuid.uuid4().hex}"
    replicas = [SendGovernor(redis, headroom=1.0, max_wait_seconds=30, prefix=prefix) for _ in range(2)]
    rate, sends = 20, 50
    sent_at: list[float] = []

    async def send(governor: SendGovernor) -> None:
        slot = await governor.reserve(number, rate=rate)
        assert slot.reserved
        await asyncio.sleep(slot.wait)
        sent_at.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(send(replicas[n % 2]) for n in range(sends)))
    assert per_second(sent_at) <= rate + 1  # the slot at each end of a window may both fall inside it
    # evenly spaced: 50 sends at 20/s take about 2.5 s, never much less
    assert time.monotonic() - started >= (sends - 1) / rate * 0.9


async def test_a_slot_too_far_ahead_is_refused_and_a_pause_pushes_the_next_slot(redis: Redis) -> None:
    governor = SendGovernor(redis, headroom=1.0, max_wait_seconds=0.5, prefix=f"test:gov:{uuid.uuid4().hex}")
    number = "pn-busy"
    waits = [await governor.reserve(number, rate=10) for _ in range(6)]
    assert all(slot.reserved for slot in waits)
    assert math.isclose(waits[-1].wait, 0.5, abs_tol=0.06)
    refused = await governor.reserve(number, rate=10)
    assert not refused.reserved and refused.wait > 0.5

    other = "pn-paused"
    await governor.pause(other, seconds=3)
    slot = await governor.reserve(other, rate=80)
    assert not slot.reserved and slot.wait > 2.5


async def test_the_last_gate_admits_at_most_the_rate_in_any_window_even_when_sends_bunch_up(redis: Redis) -> None:
    governor = SendGovernor(redis, window_seconds=0.5, prefix=f"test:gov:{uuid.uuid4().hex}")
    answered: list[float] = []

    async def send() -> None:  # 12 senders that all woke at the same moment, as after a stall
        async with governor.admitted("pn-late", rate=4):
            await asyncio.sleep(0.01)  # the call to Meta
            answered.append(time.monotonic())

    await asyncio.gather(*(send() for _ in range(12)))
    answered.sort()
    for start in range(len(answered)):  # a request reaches Meta before its answer: at most 4 per 0.5 s there
        inside = [moment for moment in answered if 0 <= moment - answered[start] < 0.5]
        assert len(inside) <= 4
    assert answered[-1] - answered[0] >= 1.0  # 12 sends at 4 per window need three windows


async def test_a_send_holds_its_place_until_a_window_after_its_answer_however_slow_the_way_to_meta(
        redis: Redis) -> None:
    """Two sends in the window are never at Meta within one window: the next one waits for the slow one's answer
    plus the window, not only for a window after the gate (a stalled process or network delivers late)."""
    governor = SendGovernor(redis, window_seconds=0.3, prefix=f"test:gov:{uuid.uuid4().hex}")
    slow_answered = asyncio.Event()
    moments: dict[str, float] = {}

    async def slow() -> None:
        async with governor.admitted("pn-slow", rate=1):
            await asyncio.sleep(0.5)  # reaches Meta late, somewhere before its answer
            moments["slow answered"] = time.monotonic()
            slow_answered.set()

    async def next_send() -> None:
        await asyncio.sleep(0.05)
        async with governor.admitted("pn-slow", rate=1):
            moments["next admitted"] = time.monotonic()

    await asyncio.gather(slow(), next_send())
    assert moments["next admitted"] - moments["slow answered"] >= 0.28  # the window after the answer (Redis clock)

    async def failing() -> None:
        async with governor.admitted("pn-fail", rate=1):
            raise RuntimeError("the call to Meta failed")

    with pytest.raises(RuntimeError):
        await failing()
    started = time.monotonic()
    async with governor.admitted("pn-fail", rate=1):  # a failed send leaves the window like an answered one
        pass
    assert 0.25 <= time.monotonic() - started < 2.0


async def test_a_release_that_fails_never_turns_a_made_send_into_an_error(redis: Redis,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The send happened: if its place cannot be released (Redis gone), the caller still gets the answer to record
    (an error here would make the sender try the send again); the place then lasts the in-flight time instead."""
    governor = SendGovernor(redis, in_flight_seconds=0.5, prefix=f"test:gov:{uuid.uuid4().hex}")

    async def redis_gone(**_: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(governor, "_release", redis_gone)
    async with governor.admitted("pn-release", rate=1):
        answer = "wamid.sent"
    assert answer == "wamid.sent"
    started = time.monotonic()
    async with governor.admitted("pn-release", rate=1):  # the unreleased place expires with its in-flight time
        pass
    assert 0.3 <= time.monotonic() - started < 2.0
