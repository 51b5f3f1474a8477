"""Once-and-in-order delivery of seq-bearing events to each local socket.

The realtime service gives each event of a tenant the next `seq` (no gaps) and emits it to the tenant's room through
Redis pub/sub, which may duplicate (at-least-once relay), reorder (two relays) or lose (fire-and-forget) it. The
gateway keeps, per signed-in local socket, the last seq it delivered and delivers only `last + 1`:

- seq <= last: a duplicate, dropped;
- seq == last + 1: delivered. Sockets in order get it in ONE room broadcast (encoded once), the others are skipped;
- seq > last + 1 (or the socket is busy with a replay): handled on its own, under the socket's lock: the missing
  events come from the replay buffer, in order; when the buffer no longer reaches back, the socket gets
  `resync:required {currentSeq}` and continues from the tenant's current seq.

A periodic catch-up delivers events whose pub/sub message was lost with nothing after them: every interval, each
socket still behind the seq its tenant had at the previous tick is filled from the buffer (the previous tick's, so
events on their way through pub/sub are not read twice).

`resume {lastSeq}` replays from the buffer what the socket missed before it signed in, under the same lock, so live
events arriving meanwhile are neither lost nor doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from eva_common.realtime.sequence import BufferedEvent, Replay

from gateway.socket_metrics import SOCKET_EVENTS

logger = logging.getLogger("gateway.socket_delivery")

RESYNC_EVENT = "resync:required"

Room = str | list[str]
"""One room, or several (a tenant's room with some of its users' rooms): a socket in any of them is a member once."""


class ReplaySource(Protocol):
    """The tenant's sequence and replay buffer (eva_common.realtime.sequence.ReplayReader)."""

    async def current(self, tenant_id: str) -> int: ...

    async def replay(self, *, tenant_id: str, after_seq: int, limit: int = ...) -> Replay: ...

    async def after(self, *, tenant_id: str, after_seq: int, limit: int = ...) -> list[BufferedEvent]: ...


class DeliverySink(Protocol):
    """Emits to this replica's sockets only (never through the pub/sub channel)."""

    def members(self, room: Room) -> list[str]: ...

    async def broadcast(self, event: str, data: Any, *, room: Room, skip: list[str]) -> None: ...

    async def send(self, sid: str, event: str, data: Any) -> None: ...


@dataclass(slots=True)
class SocketSeq:
    """What one signed-in socket has been delivered: everything in (start, last]."""

    tenant_id: str
    user_id: str
    start: int
    last: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0  # handlers queued for the lock
    active: bool = True  # False while signed out (token expired): nothing is delivered

    @property
    def busy(self) -> bool:
        return self.pending > 0 or self.lock.locked()


@dataclass(frozen=True, slots=True)
class Live:
    event: str
    payload: Any
    seq: int


@dataclass(frozen=True, slots=True)
class ResumeResult:
    complete: bool  # False: the buffer does not reach back (or lastSeq is ahead); resync:required was sent
    replayed: int
    current: int


class SocketDelivery:
    def __init__(self, *, replay: ReplaySource, sink: DeliverySink | None = None, page_size: int = 500,
                 catch_up_interval_seconds: float = 2.0) -> None:
        self._replay = replay
        self._sink = sink
        self._page = page_size
        self._interval = catch_up_interval_seconds
        self._states: dict[str, SocketSeq] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: dict[str, int] = {}  # tenant -> its seq at the previous catch-up tick
        self._loop: asyncio.Task[None] | None = None

    def bind(self, sink: DeliverySink) -> None:
        self._sink = sink

    @property
    def sink(self) -> DeliverySink:
        if self._sink is None:
            raise RuntimeError("the delivery is not bound to a Socket.io manager")
        return self._sink

    # ------------------------------------------------------------------ sockets

    def state(self, sid: str) -> SocketSeq | None:
        return self._states.get(sid)

    async def track(self, sid: str, *, tenant_id: str, user_id: str) -> SocketSeq:
        """A socket signed in: it continues where it was if it is the same user of the same tenant, else it starts
        at the tenant's current seq (it loads the state through REST, or resumes)."""
        state = self._states.get(sid)
        if state is not None and (state.tenant_id, state.user_id) == (tenant_id, user_id):
            state.active = True
            return state
        current = await self._replay.current(tenant_id)
        state = SocketSeq(tenant_id=tenant_id, user_id=user_id, start=current, last=current)
        self._states[sid] = state
        return state

    def pause(self, sid: str) -> None:
        state = self._states.get(sid)
        if state is not None:
            state.active = False

    def forget(self, sid: str) -> None:
        self._states.pop(sid, None)

    # ------------------------------------------------------------------ live events

    async def publish(self, *, tenant_id: str, room: Room, event: str, payload: Any, seq: int) -> None:
        """A seq-bearing event for `room` (a tenant's, or a tenant's with some of its users') arrived from the channel:
        deliver it to its local sockets, each once."""
        ready = 0
        skip: list[str] = []
        slow: list[tuple[str, SocketSeq]] = []
        duplicates = 0
        for sid in self.sink.members(room):
            state = self._states.get(sid)
            if state is None or not state.active or state.tenant_id != tenant_id:
                skip.append(sid)
            elif state.busy:
                skip.append(sid)
                slow.append((sid, state))
            elif seq <= state.last:
                skip.append(sid)
                duplicates += 1
            elif seq == state.last + 1:
                state.last = seq  # no await before the broadcast below: it queues in this order
                ready += 1
            else:
                skip.append(sid)
                slow.append((sid, state))
        if duplicates:
            SOCKET_EVENTS.labels("duplicate").inc(duplicates)
        if ready:
            await self.sink.broadcast(event, payload, room=room, skip=skip)
            SOCKET_EVENTS.labels("delivered").inc(ready)
        live = Live(event=event, payload=payload, seq=seq)
        for sid, state in slow:
            self._spawn(sid, state, self._advance(sid, state, target=seq, live=live))

    def _spawn(self, sid: str, state: SocketSeq, work: Coroutine[Any, Any, None]) -> None:
        state.pending += 1

        async def run() -> None:
            waiting = True
            try:
                async with state.lock:
                    state.pending -= 1
                    waiting = False
                    if self._states.get(sid) is state and state.active:
                        await work
                    else:
                        work.close()
            except Exception:
                logger.exception("socket delivery failed", extra={"sid": sid, "tenant_id": state.tenant_id})
            finally:
                if waiting:
                    state.pending -= 1
                    work.close()

        task = asyncio.create_task(run(), name=f"socket-delivery-{sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _advance(self, sid: str, state: SocketSeq, *, target: int, live: Live | None) -> None:
        """Under the socket's lock: brings it up to `target` (the live event's seq, or the catch-up's)."""
        if live is not None and live.seq <= state.last:
            SOCKET_EVENTS.labels("duplicate").inc()
            return
        if live is not None and live.seq == state.last + 1:
            state.last = live.seq
            await self.sink.send(sid, live.event, live.payload)
            SOCKET_EVENTS.labels("delivered").inc()
            return
        if target <= state.last:
            return
        first = state.last + 1
        filled = await self._fill(sid, state, target=target)
        if filled:
            logger.info("socket gap filled from the replay buffer",
                        extra={"sid": sid, "tenant_id": state.tenant_id, "from_seq": first, "to_seq": state.last,
                               "events": filled})

    async def _fill(self, sid: str, state: SocketSeq, *, target: int) -> int:
        """Delivers the buffered events after the socket's last, in order, at least up to `target`; resync when the
        buffer does not reach back. Returns how many were delivered."""
        delivered = 0
        while state.last < target:
            replay = await self._replay.replay(tenant_id=state.tenant_id, after_seq=state.last, limit=self._page)
            if not replay.complete or not replay.events:
                await self._resync(sid, state, current=max(replay.current, target))
                return delivered
            for buffered in replay.events:
                if buffered.seq != state.last + 1:
                    break
                state.last = buffered.seq
                await self.sink.send(sid, buffered.event, buffered.payload)
                SOCKET_EVENTS.labels("gap_filled").inc()
                delivered += 1
            if len(replay.events) < self._page and state.last < target:
                await self._resync(sid, state, current=max(replay.current, target))
                return delivered
        return delivered

    async def _resync(self, sid: str, state: SocketSeq, *, current: int) -> None:
        logger.warning("socket must resync: the replay buffer no longer covers its gap",
                       extra={"sid": sid, "tenant_id": state.tenant_id, "last_seq": state.last,
                              "current_seq": current})
        state.last = max(state.last, current)
        state.start = state.last
        SOCKET_EVENTS.labels("resync").inc()
        await self.sink.send(sid, RESYNC_EVENT, {"currentSeq": state.last})

    # ------------------------------------------------------------------ resume

    async def resume(self, sid: str, *, last_seq: int) -> ResumeResult:
        """Replays to the signed-in socket `sid` the buffered events after `last_seq` that it has not been
        delivered since it signed in, in order; or sends resync:required when the buffer does not reach back."""
        state = self._states.get(sid)
        if state is None or not state.active:
            raise RuntimeError("resume of a socket that is not signed in")
        state.pending += 1
        waiting = True
        try:
            async with state.lock:
                state.pending -= 1
                waiting = False
                return await self._resume(sid, state, last_seq=last_seq)
        finally:
            if waiting:
                state.pending -= 1

    async def _resume(self, sid: str, state: SocketSeq, *, last_seq: int) -> ResumeResult:
        replay = await self._replay.replay(tenant_id=state.tenant_id, after_seq=last_seq, limit=self._page)
        if not replay.complete:
            await self._resync(sid, state, current=replay.current)
            return ResumeResult(complete=False, replayed=0, current=replay.current)
        replayed = 0
        after = last_seq
        page: list[BufferedEvent] = replay.events
        while page:
            for buffered in page:
                if buffered.seq != after + 1:  # trimmed between two pages
                    await self._resync(sid, state, current=await self._replay.current(state.tenant_id))
                    return ResumeResult(complete=False, replayed=replayed, current=state.last)
                after = buffered.seq
                if state.start < buffered.seq <= state.last:
                    continue  # delivered since the socket signed in
                await self.sink.send(sid, buffered.event, buffered.payload)
                replayed += 1
            if len(page) < self._page:
                break
            page = await self._replay.after(tenant_id=state.tenant_id, after_seq=after, limit=self._page)
        state.start = min(state.start, last_seq)
        state.last = max(state.last, after)
        return ResumeResult(complete=True, replayed=replayed, current=state.last)

    # ------------------------------------------------------------------ periodic catch-up

    async def catch_up(self) -> int:
        """Fills every socket still behind the seq its tenant had at the previous tick; returns how many."""
        tenants = sorted({state.tenant_id for state in self._states.values() if state.active})
        currents = await asyncio.gather(*(self._replay.current(tenant) for tenant in tenants))
        previous, self._seen = self._seen, dict(zip(tenants, currents, strict=True))
        behind = 0
        for sid, state in list(self._states.items()):
            target = previous.get(state.tenant_id, 0)
            if state.active and not state.busy and state.last < target:
                behind += 1
                self._spawn(sid, state, self._advance(sid, state, target=target, live=None))
        return behind

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._catch_up_forever(), name="socket-catch-up")

    async def _catch_up_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.catch_up()
            except Exception:
                logger.exception("socket catch-up failed")

    async def close(self) -> None:
        tasks: list[asyncio.Task[None]] = [*self._tasks, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loop = None
        self._states.clear()
