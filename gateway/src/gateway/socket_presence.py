"""Presence of this replica's signed-in sockets (eva_common.realtime.presence on the gateway's Redis).

A socket is recorded when it signs in and forgotten when it disconnects, is signed out (token expired or revoked)
or the replica shuts down; a heartbeat refreshes every local socket each `ttl / 3` and also expires the entries a
crashed replica left behind, so a single-gateway deployment needs nothing else. Each change is reported by the
store to exactly one caller, which announces it to the tenant's room: `presence:update {userId, online}` (no seq,
never replayed, never through the delivery gate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from eva_common.realtime.presence import Connection, PresenceStore

from gateway.socket_metrics import PRESENCE_ANNOUNCED

logger = logging.getLogger("gateway.socket_presence")

PRESENCE_EVENT = "presence:update"
MAX_CONCURRENT_STORE_CALLS = 32

Announce = Callable[[str, str, bool], Awaitable[None]]  # tenant id, user id, online


class SocketPresence:
    def __init__(self, *, store: PresenceStore, announce: Announce, ttl_seconds: float) -> None:
        self._store = store
        self._announce = announce
        self._interval = ttl_seconds / 3
        self._connections: dict[str, Connection] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        # Thousands of sockets can sign in or out at once (a replica restart, a network blip): their Redis calls
        # queue here instead of all waiting on the connection pool at the same time and timing out.
        self._in_flight = asyncio.Semaphore(MAX_CONCURRENT_STORE_CALLS)

    @property
    def store(self) -> PresenceStore:
        return self._store

    async def signed_in(self, sid: str, *, tenant_id: str, user_id: str) -> None:
        connection = Connection(tenant_id=tenant_id, user_id=user_id, connection_id=sid)
        previous = self._connections.get(sid)
        if previous == connection:
            return
        if previous is not None:
            await self.signed_out(sid)
        self._connections[sid] = connection
        async with self._in_flight:
            came_online = await self._store.connect(connection)
        if came_online:
            await self._tell(tenant_id, user_id, online=True)

    async def signed_out(self, sid: str) -> None:
        connection = self._connections.pop(sid, None)
        if connection is None:
            return
        async with self._in_flight:
            went_offline = await self._store.disconnect(connection)
        if went_offline:
            await self._tell(connection.tenant_id, connection.user_id, online=False)

    async def heartbeat(self) -> None:
        """Refreshes this replica's sockets, then expires (and announces) what crashed replicas left."""
        await self._store.refresh(list(self._connections.values()))
        for change in await self._store.expire():
            await self._tell(change.tenant_id, change.user_id, online=change.online)

    async def _tell(self, tenant_id: str, user_id: str, *, online: bool) -> None:
        PRESENCE_ANNOUNCED.labels(str(online).lower()).inc()
        try:
            await self._announce(tenant_id, user_id, online)
        except Exception:
            logger.exception("could not announce a presence change", extra={"tenant_id": tenant_id})

    def start(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat_forever(), name="socket-presence-heartbeat")

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.heartbeat()
            except Exception:
                logger.exception("presence heartbeat failed")

    async def close(self) -> None:
        """Stops the heartbeat and signs every local socket out (announcing who went offline)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        for sid in list(self._connections):
            with contextlib.suppress(Exception):
                await self.signed_out(sid)
