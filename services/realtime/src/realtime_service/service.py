"""Relays domain events to the browsers: each seq-bearing event gets its tenant's next seq once, and is emitted
to the tenant's room (and, for an assignment, the assignee's user room in the same emit).

Guarantee: every relayed event is emitted at least once with one stable seq, and in the normal case exactly
once. The Kafka offset is committed only after the emit, so a crash anywhere before it redelivers the record;
the sequencer hands the redelivered event its original seq, and it is emitted only if it had not been emitted
yet. The one window for a duplicate is a crash after the emit but before it is marked emitted (one Redis
round-trip): the event then reaches the room twice with the same seq, which clients drop (seq <= last seen).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from eva_common.errors import InvalidArgument
from eva_common.realtime.sequence import Assignment
from eva_events.envelope import EventEnvelope

from realtime_service.emitter import SocketEmitter
from realtime_service.mapping import to_emission
from realtime_service.metrics import EVENTS_RELAYED

logger = logging.getLogger(__name__)


class Sequencer(Protocol):
    async def assign(self, *, tenant_id: str, event_id: str, event: str, payload: dict[str, Any]) -> Assignment: ...

    async def mark_emitted(self, *, event_id: str, seq: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Relayed:
    event: str
    room: str
    seq: int
    emitted: bool  # False when the event had already been emitted (a redelivery)


class RealtimeRelay:
    def __init__(self, *, sequencer: Sequencer, emitter: SocketEmitter) -> None:
        self._sequencer = sequencer
        self._emitter = emitter

    async def relay(self, envelope: EventEnvelope) -> Relayed | None:
        emission = to_emission(envelope)
        if emission is None:
            return None
        if not envelope.tenant_id:
            raise InvalidArgument(f"event {envelope.id} ({envelope.type}) names no tenant")
        assignment = await self._sequencer.assign(
            tenant_id=envelope.tenant_id, event_id=envelope.id, event=emission.event, payload=emission.payload
        )
        if assignment.emitted:
            logger.info("event already emitted; not emitting again",
                        extra={"event_id": envelope.id, "seq": assignment.seq})
            EVENTS_RELAYED.labels(emission.event, "skipped").inc()
            return Relayed(event=emission.event, room=emission.room, seq=assignment.seq, emitted=False)
        await self._emitter.emit(emission.event, {**emission.payload, "seq": assignment.seq}, room=emission.rooms)
        await self._sequencer.mark_emitted(event_id=envelope.id, seq=assignment.seq)
        EVENTS_RELAYED.labels(emission.event, "emitted").inc()
        return Relayed(event=emission.event, room=emission.room, seq=assignment.seq, emitted=True)
