"""Emits Socket.io events to the sockets the gateway hosts, through python-socketio's Redis manager.

The stock AsyncRedisManager logs and drops an emit it cannot publish; this one raises instead (as
eva_common's Unavailable, a transient failure), so the Kafka record is retried rather than the event lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import socketio
from eva_common.errors import Unavailable

from realtime_service.mapping import Rooms

Emit = tuple[str, dict[str, Any], Rooms]  # (event, payload, rooms)


class SocketEmitter(Protocol):
    async def emit(self, event: str, payload: dict[str, Any], *, room: Rooms) -> None: ...

    async def emit_many(self, emits: Sequence[Emit]) -> None: ...


class _StrictRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    connected: bool
    redis: Any
    channel: str
    json: Any

    held: list[str] | None = None  # during `publish_together`: the messages its emits built, not yet published

    async def _publish(self, data: Any) -> Any:
        if self.held is not None:
            self.held.append(self.json.dumps(data))
            return None
        try:
            if not self.connected:
                self._redis_connect()
            return await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception:
            self.connected = False
            raise

    async def publish_together(self, emits: Sequence[Emit]) -> None:
        """The manager's own emits (its message format), published in order in one pipeline: one round trip."""
        held: list[str] = []
        self.held = held
        try:
            for event, payload, room in emits:
                await self.emit(event, data=payload, room=room)
        finally:
            self.held = None
        try:
            if not self.connected:
                self._redis_connect()
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in held:
                    pipe.publish(self.channel, message)
                await pipe.execute()
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

    async def emit_many(self, emits: Sequence[Emit]) -> None:
        try:
            await self._manager.publish_together(emits)
        except Exception as error:
            raise Unavailable("cannot publish to the Socket.io channel", code="SOCKETIO_UNAVAILABLE") from error

    async def close(self) -> None:
        client = getattr(self._manager, "redis", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
