"""API keys of tenants, as every public edge takes them (the gateway's `/api/*`, n8n-integration's `/n8n/*`): a key
(`eva_<prefix>_<secret>`) is exchanged at auth (AuthService.ExchangeApiKey) for a short-lived access token of type
`api_key` carrying the key's tenant and scopes, which is verified like any token (signature, expiry, revocation)
and forwarded downstream as the bearer.

Exchanged tokens are cached in memory, keyed by the SHA-256 of the key (the raw key is never stored or logged),
until `margin_seconds` before they expire; a cached token is verified again on every use, so a key revoked since
(its revocation time in Redis) is exchanged again, and auth refuses it (401 API_KEY_INVALID). Concurrent requests
with the same uncached key share one exchange. `before_exchange` runs before each exchange (a cache miss): the
edge's rate limit per client IP, so guessing keys costs the guesser, not auth.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from eva.auth.v1 import auth_pb2

from eva_common.auth import Principal
from eva_common.errors import Unauthenticated

REFRESH_MARGIN_SECONDS = 30.0

TokenCheck = Callable[[str], Awaitable[Principal]]
Exchange = Callable[[auth_pb2.ExchangeApiKeyRequest], Awaitable[auth_pb2.ExchangeApiKeyResponse]]
BeforeExchange = Callable[[str], Awaitable[Any]]


def key_digest(key: str) -> str:
    """What identifies a key in memory, caches and logs: its SHA-256 (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def _nothing(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Exchanged:
    token: str
    key_id: str
    valid_until: float  # on the exchange's clock


class ApiKeyTokens:
    """The verified `api_key` principal of a key: exchanged at auth once, cached until shortly before it expires."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        verify: TokenCheck,
        max_entries: int,
        before_exchange: BeforeExchange = _nothing,
        margin_seconds: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange_call = exchange
        self._verify = verify
        self._before_exchange = before_exchange
        self._max_entries = max_entries
        self._margin = margin_seconds
        self._clock = clock
        self._cache: OrderedDict[str, _Exchanged] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[str]] = {}

    async def principal(self, key: str, *, client_ip: str) -> Principal:
        """The verified `api_key` principal of `key` (401 when auth does not know it, or it is revoked)."""
        digest = key_digest(key)
        cached = self._fresh(digest)
        if cached is not None:
            try:
                return await self._api_key_principal(cached.token)
            except Unauthenticated:  # revoked (or expired early): ask auth again, it has the last word
                self._cache.pop(digest, None)
        return await self._api_key_principal(await self._exchange(digest, key, client_ip))

    def forget_key(self, key_id: str) -> int:
        """Drops this process's cached tokens of a key (after it is revoked here); returns how many."""
        stale = [digest for digest, entry in self._cache.items() if entry.key_id == key_id]
        for digest in stale:
            del self._cache[digest]
        return len(stale)

    def __len__(self) -> int:
        return len(self._cache)

    async def _api_key_principal(self, token: str) -> Principal:
        principal = await self._verify(token)
        if not principal.is_api_key:
            raise Unauthenticated("the API key exchange returned another kind of token", code="TOKEN_INVALID")
        return principal

    def _fresh(self, digest: str) -> _Exchanged | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if self._clock() >= entry.valid_until:
            del self._cache[digest]
            return None
        self._cache.move_to_end(digest)
        return entry

    async def _exchange(self, digest: str, key: str, client_ip: str) -> str:
        task = self._inflight.get(digest)
        if task is None:
            await self._before_exchange(client_ip)
            task = self._inflight.get(digest)  # another request may have started it meanwhile
            if task is None:
                task = asyncio.create_task(self._fetch(digest, key), name="api-key-exchange")
                self._inflight[digest] = task
                task.add_done_callback(partial(self._settled, digest))
        # shielded: one caller giving up does not cancel the exchange the others wait for
        return await asyncio.shield(task)

    def _settled(self, digest: str, task: asyncio.Task[str]) -> None:
        if self._inflight.get(digest) is task:
            del self._inflight[digest]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter already got it

    async def _fetch(self, digest: str, key: str) -> str:
        response = await self._exchange_call(auth_pb2.ExchangeApiKeyRequest(api_key=key))
        lifetime = response.expires_in - self._margin
        if response.access_token and lifetime > 0:
            self._store(digest, _Exchanged(response.access_token, response.key_id, self._clock() + lifetime))
        return response.access_token

    def _store(self, digest: str, entry: _Exchanged) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
