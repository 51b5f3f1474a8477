"""Emits Socket.io events to the sockets the gateway hosts, through python-socketio's Redis manager.

The stock AsyncRedisManager logs and drops an emit it cannot publish; this one raises instead (as
eva_common's Unavailable, a transient failure), so the Kafka record is retried rather than the event lost.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import socketio
from eva_common.errors import Unavailable

from realtime_service.mapping import Rooms


class SocketEmitter(Protocol):
    async def emit(self, event: str, payload: dict[str, Any], *, room: Rooms) -> None: ...


class _StrictRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    connected: bool
    redis: Any
    channel: str
    json: Any

    async def _publish(self, data: Any) -> Any:
        try:
            if not self.connected:
                self._redis_connect()
            return await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception:
            self.connected = False
            raise


class RedisSocketEmitter:
    def __init__(self, *, redis_url: str, channel: str) -> None:
        self._manager = _StrictRedisManager(redis_url, channel=channel, write_only=True)

    async def emit(self, event: str, payload: dict[str, Any], *, room: Rooms) -> None:
        try:
            await self._manager.emit(event, data=payload, room=room)
        except Exception as error:
            raise Unavailable("cannot publish to the Socket.io channel", code="SOCKETIO_UNAVAILABLE") from error

    async def close(self) -> None:
        client = getattr(self._manager, "redis", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
