"""Admission control: a bounded number of calls at once, a bounded wait for a place, and a fast refusal past it.

A saturated service that queues every request answers each one too late: its callers time out (504) and cannot tell
whether their request was done, and the work done for requests nobody waits for any more takes the machine from the
ones that still could be answered. An `AdmissionGate` lets `limit` calls work at once; a call that finds no place
waits for one, in arrival order, at most `max_wait` seconds (and at most half of what is left of its caller's
deadline; one that arrives with less than `min_time_remaining` of it left is refused at once); past that it is
refused with `Overloaded` (HTTP 503 with Retry-After) before any of its work was done, so
the caller knows that nothing happened and may simply try again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Gauge

from eva_common.errors import Overloaded

ADMITTED = Gauge("eva_admission_active", "Calls working inside an admission gate", ["gate"])
WAITING = Gauge("eva_admission_waiting", "Calls waiting for a place in an admission gate", ["gate"])
SHED = Counter("eva_admission_shed_total", "Calls refused (503 OVERLOADED) by an admission gate", ["gate"])


class AdmissionGate:
    def __init__(self, name: str, *, limit: int, max_wait: float, retry_after: int = 1,
                 min_time_remaining: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("an admission gate needs at least one place")
        self.name = name
        self._limit = limit
        self._max_wait = max_wait
        self._retry_after = retry_after
        self._min_time_remaining = min_time_remaining
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._active_gauge = ADMITTED.labels(name)
        self._waiting_gauge = WAITING.labels(name)
        self._shed = SHED.labels(name)

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    @asynccontextmanager
    async def admitted(self, *, time_remaining: float | None = None) -> AsyncIterator[None]:
        """Holds one place for the block. `time_remaining`: seconds left of the caller's deadline, if it has one; a
        call with less than `min_time_remaining` left (it queued that long before it got here) is refused at once."""
        if time_remaining is not None and time_remaining < self._min_time_remaining:
            raise self._refusal()
        await self._acquire(self._wait_for(time_remaining))
        try:
            yield
        finally:
            self._release()

    def _wait_for(self, time_remaining: float | None) -> float:
        if time_remaining is None:
            return self._max_wait
        return min(self._max_wait, time_remaining / 2)

    async def _acquire(self, wait: float) -> None:
        if self._active < self._limit and not self._waiters:
            self._take()
            return
        if wait <= 0:
            raise self._refusal()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        self._waiting_gauge.set(self.waiting)
        # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that comes with the place handed over
        expiry = loop.call_later(wait, _expire, waiter)
        try:
            await waiter  # _release hands its place over by setting the result
        except TimeoutError:
            raise self._refusal() from None
        except asyncio.CancelledError:
            if _handed(waiter):  # handed a place just as the caller went away (not: its wait ran out)
                self._release()
            raise
        finally:
            expiry.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._waiting_gauge.set(self.waiting)

    def _take(self) -> None:
        self._active += 1
        self._active_gauge.set(self._active)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place passes to the longest waiter; the count stays
                self._waiting_gauge.set(self.waiting)
                return
        self._active -= 1
        self._active_gauge.set(self._active)

    def _refusal(self) -> Overloaded:
        self._shed.inc()
        return Overloaded(f"too many {self.name} requests at once; retry in {self._retry_after} s",
                          retry_after=self._retry_after)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _handed(waiter: asyncio.Future[None]) -> bool:
    return waiter.done() and not waiter.cancelled() and waiter.exception() is None
