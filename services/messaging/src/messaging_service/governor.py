"""The send governor: Meta's throughput limit per business number (reference §7: 80 messages/s by default, 20 for
coexistence numbers), shared by every sender replica through Redis.

Each send reserves the next free slot of its number (GCRA: slots `1 / (rate * headroom)` seconds apart on Redis's
clock) and waits for it, so sends leave evenly spaced whatever the number of replicas. Right before the call,
`admitted` is the last gate: a send occupies its number's window from the gate until a `window` (a second) after its
answer came back, and at most `rate` sends occupy it at a time. A request reaches Meta between the gate and its
answer, so two sends that are never in the window together can never reach Meta within the same second, whatever
the delay between the gate and Meta (a busy machine, the network): no second at Meta holds more than `rate` of them.
A slot further away than `max_wait` is not reserved: the caller waits until the queue has room (`retry_after`), the
most urgent job first, or gives its job back to PostgreSQL. When Meta still answers 130429, `pause` pushes every
replica's next slot of that number back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from messaging_service.metrics import GOVERNOR_WAIT

logger = logging.getLogger(__name__)

# KEYS[1]: the number's next free slot (ms, Redis clock). ARGV: interval ms, max wait ms.
# Returns {reserved (1|0), wait ms}.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then
  return {0, tostring(wait)}
end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(wait + interval + 60000))
return {1, tostring(wait)}
"""

# KEYS[1]: as above. ARGV: pause ms. The next slot is at least `pause` from now.
_PAUSE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < until_ms then
  redis.call('SET', KEYS[1], tostring(until_ms), 'PX', math.ceil(tonumber(ARGV[1]) + 60000))
end
return 1
"""


# KEYS[1]: the number's sends in its window (a sorted set: member -> when it leaves, Redis-clock ms). ARGV: limit,
# in-flight ms (how long a send whose answer never came, e.g. its process died, holds its place), member.
# Admits the send (returns 0) unless `limit` sends are in the window; else the ms to wait before asking again.
_ADMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
local limit = tonumber(ARGV[1])
local in_flight = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + in_flight, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(in_flight) + 1000)
  return '0'
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(math.min(tonumber(first[2]) - now, 20))
"""

# KEYS[1]: as above. ARGV: window ms, member. The send's answer came back: it leaves the window a `window` from now.
_RELEASE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + tonumber(now_parts[2]) / 1000
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class Slot:
    """A reservation: `reserved` with `wait` seconds to sleep before sending; or not reserved, with `retry_after`
    seconds until the number's queue has room again (then the most urgent job due takes it)."""

    reserved: bool
    wait: float
    retry_after: float = 0.0


class SendGovernor:
    def __init__(self, redis: Redis, *, headroom: float = 0.97, max_wait_seconds: float = 2.0,
                 window_seconds: float = 1.0, in_flight_seconds: float = 60.0, prefix: str = "send:gov") -> None:
        self._redis = redis
        self._headroom = headroom
        self._max_wait_ms = max_wait_seconds * 1000
        self._window_ms = window_seconds * 1000
        self._in_flight_ms = in_flight_seconds * 1000
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)

    def _key(self, phone_number_id: str) -> str:
        return f"{self._prefix}:{{{phone_number_id}}}"

    async def reserve(self, phone_number_id: str, *, rate: int) -> Slot:
        """The next slot of the number at `rate` messages/s (times the headroom)."""
        interval_ms = 1000.0 / (rate * self._headroom)
        reserved, wait_ms = await self._reserve(keys=[self._key(phone_number_id)],
                                                args=[repr(interval_ms), repr(self._max_wait_ms)])
        wait = max(0.0, float(wait_ms) / 1000)
        if int(reserved):
            GOVERNOR_WAIT.observe(wait)
            return Slot(reserved=True, wait=wait)
        return Slot(reserved=False, wait=wait, retry_after=max(0.02, wait - self._max_wait_ms / 1000 + 0.01))

    @contextlib.asynccontextmanager
    async def admitted(self, phone_number_id: str, *, rate: int) -> AsyncIterator[None]:
        """The last gate, around the call to Meta: waits until fewer than `rate` sends of the number are in its
        window, then holds the send's place there until a window after its answer (or its failure). Slots keep
        sends evenly spaced; this keeps a process that woke late (a busy machine) from firing several slots' sends
        at once, and a slow path to Meta from letting them arrive together."""
        key = f"{self._prefix}:sent:{{{phone_number_id}}}"
        member = uuid.uuid4().hex
        while True:
            wait_ms = float(await self._admit(keys=[key], args=[rate, repr(self._in_flight_ms), member]))
            if wait_ms <= 0:
                break
            GOVERNOR_WAIT.observe(wait_ms / 1000)
            await asyncio.sleep(wait_ms / 1000)
        try:
            yield
        finally:
            try:
                await self._release(keys=[key], args=[repr(self._window_ms), member])
            except Exception as error:  # the send happened: its outcome must still be recorded; its place in the
                # window then lasts `in_flight` instead (safe: later, never earlier)
                logger.warning("send governor: a send's place was not released", extra={
                    "phone_number_id": phone_number_id, "error": repr(error)[:300]})

    async def pause(self, phone_number_id: str, *, seconds: float) -> None:
        """Meta said the number's throughput was reached (130429): no replica sends from it for `seconds`."""
        await self._pause(keys=[self._key(phone_number_id)], args=[repr(seconds * 1000)])
