"""Per-tenant event sequence numbers and replay buffer in Redis, idempotent on the event id.

One Lua script does, atomically: look the event id up (`rt:event:<eventId>`); if it is new, INCR the tenant's
counter (`rt:seq:<tenantId>`), append `{seq, event, eventId, payload}` to the tenant's replay buffer
(`rt:replay:<tenantId>`, a sorted set scored by seq, trimmed to the last N) and remember the event id with its
seq as *pending*, with a TTL. After the emit, the event id is marked *emitted*.

So a seq is assigned exactly once per event (no gaps, no duplicates while the id is remembered); a record
redelivered after a crash between assignment and emit finds its seq pending and is emitted with that same seq;
a record redelivered after the emit finds it emitted and is not emitted again.

All keys of one call must live on one Redis node (a single primary, as deployed; under Redis Cluster the keys
would need a common hash tag).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

_ASSIGN = """
local known = redis.call('GET', KEYS[1])
if known then
  return known
end
local seq = string.format('%d', redis.call('INCR', KEYS[2]))
local payload = ARGV[3]
local with_seq
if payload == '{}' then
  with_seq = '{"seq":' .. seq .. '}'
else
  with_seq = '{"seq":' .. seq .. ',' .. string.sub(payload, 2)
end
local entry = '{"seq":' .. seq .. ',"event":' .. ARGV[4] .. ',"eventId":' .. ARGV[5] .. ',"payload":' .. with_seq .. '}'
redis.call('ZADD', KEYS[3], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[2]) + 1))
redis.call('SET', KEYS[1], 'p:' .. seq, 'EX', ARGV[1])
return 'p:' .. seq
"""

_MARK_EMITTED = """
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'e:' .. ARGV[1], 'KEEPTTL')
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Assignment:
    seq: int
    emitted: bool  # True: this event id was already emitted with this seq


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    seq: int
    event: str
    event_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SeqRequest:
    """One event to number: its tenant, id, Socket.io event name and payload (without `seq`)."""

    tenant_id: str
    event_id: str
    event: str
    payload: dict[str, Any]


def event_key(event_id: str) -> str:
    return f"rt:event:{event_id}"


def seq_key(tenant_id: str) -> str:
    return f"rt:seq:{tenant_id}"


def replay_key(tenant_id: str) -> str:
    return f"rt:replay:{tenant_id}"


class RedisSequencer:
    def __init__(self, *, redis: Redis, buffer_size: int, dedupe_ttl_seconds: int) -> None:
        self._redis = redis
        self._buffer_size = buffer_size
        self._ttl = dedupe_ttl_seconds

    async def assign(self, *, tenant_id: str, event_id: str, event: str, payload: dict[str, Any]) -> Assignment:
        """The event's seq: a new one the first time, the same one for a redelivered event id."""
        return (await self.assign_many([SeqRequest(tenant_id, event_id, event, payload)]))[0]

    async def assign_many(self, requests: Sequence[SeqRequest]) -> list[Assignment]:
        """`assign` for several events in one round trip, in order (each script runs atomically, one after the
        other, so the seqs of one tenant follow the order of `requests`)."""
        if not requests:
            return []
        # EVAL, not a registered script: a pipeline of registered scripts first asks Redis whether they exist
        # (SCRIPT EXISTS, one more round trip per batch); Redis caches the compiled script by its digest either way
        async with self._redis.pipeline(transaction=False) as pipe:
            for request in requests:
                body = json.dumps({k: v for k, v in request.payload.items() if k != "seq"}, separators=(",", ":"),
                                  ensure_ascii=False, default=str)
                pipe.eval(_ASSIGN, 3, event_key(request.event_id), seq_key(request.tenant_id),
                          replay_key(request.tenant_id), self._ttl, self._buffer_size, body, json.dumps(request.event),
                          json.dumps(request.event_id))
            raws = await pipe.execute()
        return [_assignment(raw) for raw in raws]

    async def mark_emitted(self, *, event_id: str, seq: int) -> None:
        await self.mark_emitted_many([(event_id, seq)])

    async def mark_emitted_many(self, emitted: Sequence[tuple[str, int]]) -> None:
        """Marks (event id, seq) pairs emitted, in one round trip."""
        if not emitted:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event_id, seq in emitted:
                pipe.eval(_MARK_EMITTED, 1, event_key(event_id), seq)
            await pipe.execute()

    async def buffered(self, *, tenant_id: str, after_seq: int = 0, limit: int = 1000) -> list[BufferedEvent]:
        """The replay buffer after `after_seq`, oldest first."""
        return await ReplayReader(self._redis).after(tenant_id=tenant_id, after_seq=after_seq, limit=limit)


@dataclass(frozen=True, slots=True)
class Replay:
    """What a socket that last saw `after_seq` missed. `complete` is False when the buffer no longer reaches back
    to `after_seq + 1` (or `after_seq` is ahead of the tenant's sequence): the client must refetch over REST."""

    events: list[BufferedEvent]
    complete: bool
    current: int  # the tenant's latest seq when read


class ReplayReader:
    """Reads the tenant's sequence and replay buffer (the gateway, to resume sockets and fill gaps)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def current(self, tenant_id: str) -> int:
        """The tenant's latest seq (0 before its first event)."""
        value = await self._redis.get(seq_key(tenant_id))
        return int(value) if value is not None else 0

    async def after(self, *, tenant_id: str, after_seq: int, limit: int = 1000) -> list[BufferedEvent]:
        entries = await self._redis.zrangebyscore(replay_key(tenant_id), f"({after_seq}", "+inf", start=0, num=limit)
        return [_decode(raw) for raw in entries]

    async def replay(self, *, tenant_id: str, after_seq: int, limit: int = 1000) -> Replay:
        """Up to `limit` events after `after_seq`, oldest first, and whether nothing between is missing."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(seq_key(tenant_id))
            pipe.zrangebyscore(replay_key(tenant_id), f"({after_seq}", "+inf", start=0, num=limit)
            current_raw, entries = await pipe.execute()
        current = int(current_raw) if current_raw is not None else 0
        events = [_decode(raw) for raw in entries]
        if after_seq > current:
            return Replay(events=[], complete=False, current=current)
        if after_seq == current:
            return Replay(events=[], complete=True, current=current)
        complete = bool(events) and events[0].seq == after_seq + 1
        return Replay(events=events if complete else [], complete=complete, current=current)


def _assignment(raw: Any) -> Assignment:
    state = raw.decode() if isinstance(raw, bytes) else str(raw)
    marker, _, seq = state.partition(":")
    return Assignment(seq=int(seq), emitted=marker == "e")


def _decode(raw: Any) -> BufferedEvent:
    entry = json.loads(raw.decode() if isinstance(raw, bytes) else cast(str, raw))
    return BufferedEvent(seq=int(entry["seq"]), event=entry["event"], event_id=entry["eventId"],
                         payload=entry["payload"])
