"""The gateway's Socket.io client manager: python-socketio's Redis manager, with seq-bearing events to a tenant's
room (from the realtime service, through the channel; an assignment goes to the tenant's room and the assignee's user
room in one emit) handed to the SocketDelivery gate instead of being forwarded blindly. Everything else (typing,
presence, auth notices, events without a seq) passes through unchanged."""

from __future__ import annotations

from typing import Any

import socketio
from socketio.async_manager import AsyncManager

from gateway.socket_delivery import Room, SocketDelivery

NAMESPACE = "/"
TENANT_ROOM_PREFIX = "tenant:"


def seq_of(payload: Any) -> int | None:
    """The top-level integer `seq` of an event payload, if it has one."""
    if not isinstance(payload, dict):
        return None
    seq = payload.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else None


def tenant_target(room: Any) -> tuple[str, Room] | None:
    """The tenant and the room(s) of an emit to exactly one tenant's room, alone or with other rooms (its users');
    else None."""
    if isinstance(room, str):
        rooms = [room]
    elif isinstance(room, list) and room and all(isinstance(name, str) for name in room):
        rooms = [str(name) for name in room]
    else:
        return None
    tenants = [name[len(TENANT_ROOM_PREFIX):] for name in rooms if name.startswith(TENANT_ROOM_PREFIX)]
    if len(tenants) != 1:
        return None
    return tenants[0], room if isinstance(room, str) else rooms


class GatedRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, *, channel: str, delivery: SocketDelivery,
                 redis_options: dict[str, Any] | None = None) -> None:
        super().__init__(url, channel=channel, redis_options=redis_options)
        self.delivery = delivery
        delivery.bind(self)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        room = message.get("room")
        data = message.get("data")
        target = tenant_target(room)
        if (
            target is not None
            and (message.get("namespace") or NAMESPACE) == NAMESPACE
            and not message.get("binary") and not message.get("callback") and not message.get("skip_sid")
            and isinstance(data, list) and len(data) == 1
        ):
            seq = seq_of(data[0])
            if seq is not None:
                await self.delivery.publish(tenant_id=target[0], room=target[1],
                                            event=str(message["event"]), payload=data[0], seq=seq)
                return
        await super()._handle_emit(message)

    # ------------------------------------------------------------------ DeliverySink: this replica's sockets only

    def members(self, room: Room) -> list[str]:
        return [sid for sid, _ in self.get_participants(NAMESPACE, room)]  # once each, whatever rooms it is in

    async def broadcast(self, event: str, data: Any, *, room: Room, skip: list[str]) -> None:
        await AsyncManager.emit(self, event, data, namespace=NAMESPACE, room=room, skip_sid=skip or None)

    async def send(self, sid: str, event: str, data: Any) -> None:
        await AsyncManager.emit(self, event, data, namespace=NAMESPACE, room=sid)
