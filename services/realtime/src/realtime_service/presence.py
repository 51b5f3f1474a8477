"""Announces the users a crashed gateway replica left behind as offline.

Gateways record each signed-in socket in presence (eva_common.realtime.presence) and refresh it while it lives; a
replica that dies stops refreshing. Every `interval` this sweeper expires the stale entries and emits
`presence:update {userId, online: false}` to the tenant's room for each user left with no socket. Each change is
reported to one caller only, so gateways sweeping too never double an announcement.
"""

from __future__ import annotations

import logging

from eva_common.realtime.presence import PresenceChange, PresenceStore
from eva_common.realtime.rooms import tenant_room

from realtime_service.emitter import SocketEmitter
from realtime_service.metrics import PRESENCE_EXPIRED

logger = logging.getLogger(__name__)

PRESENCE_EVENT = "presence:update"


class PresenceSweeper:
    """Announces offline the users whose presence entries expired (a crashed gateway replica's sockets); realtime
    runs `sweep` periodically (eva_common.runtime.Periodic)."""

    def __init__(self, *, presence: PresenceStore, emitter: SocketEmitter) -> None:
        self._presence = presence
        self._emitter = emitter

    async def sweep(self) -> list[PresenceChange]:
        changes = await self._presence.expire()
        for change in changes:
            await self._emitter.emit(PRESENCE_EVENT, {"userId": change.user_id, "online": change.online},
                                     room=tenant_room(change.tenant_id))
            PRESENCE_EXPIRED.inc()
            logger.info("presence expired", extra={"tenant_id": change.tenant_id, "user_id": change.user_id})
        return changes
