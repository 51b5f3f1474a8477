"""Relays domain events to the browsers: each seq-bearing event gets its tenant's next seq once, and is emitted
to the tenant's room (and, for an assignment, the assignee's user room in the same emit).

Guarantee: every relayed event is emitted at least once with one stable seq, and in the normal case exactly
once. The Kafka offset is committed only after the emit, so a crash anywhere before it redelivers the record;
the sequencer hands the redelivered event its original seq, and it is emitted only if it had not been emitted
yet. The one window for a duplicate is a crash after the emit but before it is marked emitted (one Redis
round-trip): the event then reaches the room twice with the same seq, which clients drop (seq <= last seen).

A fetch's events are relayed together: their seqs assigned in one Redis round trip, emitted in one, marked in one
(three round trips per batch instead of three per event), in the order the fetch returned them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from eva_common.errors import InvalidArgument
from eva_common.realtime.sequence import Assignment, SeqRequest
from eva_events.envelope import EventEnvelope

from realtime_service.emitter import SocketEmitter
from realtime_service.mapping import Emission, to_emission
from realtime_service.metrics import EMIT_DELAY, EVENTS_RELAYED

logger = logging.getLogger(__name__)


class Sequencer(Protocol):
    async def assign_many(self, requests: Sequence[SeqRequest]) -> list[Assignment]: ...

    async def mark_emitted_many(self, emitted: Sequence[tuple[str, int]]) -> None: ...


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
        return (await self.relay_many([envelope]))[0]

    async def relay_many(self, envelopes: Sequence[EventEnvelope]) -> list[Relayed | None]:
        """Each event's outcome, in order: None for an event the browser does not see. A second copy of an event in
        the batch (a redelivery fetched with the first) is not emitted again."""
        emissions = [to_emission(envelope) for envelope in envelopes]
        shown: dict[str, tuple[EventEnvelope, Emission]] = {}  # by event id, the first copy
        for envelope, emission in zip(envelopes, emissions, strict=True):
            if emission is not None:
                if not envelope.tenant_id:
                    raise InvalidArgument(f"event {envelope.id} ({envelope.type}) names no tenant")
                shown.setdefault(envelope.id, (envelope, emission))
        assignments = await self._sequencer.assign_many([
            SeqRequest(envelope.tenant_id, envelope.id, emission.event, emission.payload)
            for envelope, emission in shown.values()])
        due = [(envelope, emission, assignment) for (envelope, emission), assignment
               in zip(shown.values(), assignments, strict=True) if not assignment.emitted]
        if due:
            await self._emitter.emit_many([(emission.event, {**emission.payload, "seq": assignment.seq},
                                            emission.rooms) for _, emission, assignment in due])
            await self._sequencer.mark_emitted_many([(envelope.id, assignment.seq) for envelope, _, assignment in due])
            emitted_at = datetime.now(UTC)
            for envelope, emission, _ in due:
                EMIT_DELAY.labels(emission.event).observe(max(0.0, (emitted_at - envelope.occurred_at).total_seconds()))
        outcomes: dict[str, Relayed] = {}
        for (envelope, emission), assignment in zip(shown.values(), assignments, strict=True):
            if assignment.emitted:
                logger.info("event already emitted; not emitting again",
                            extra={"event_id": envelope.id, "seq": assignment.seq})
            EVENTS_RELAYED.labels(emission.event, "skipped" if assignment.emitted else "emitted").inc()
            outcomes[envelope.id] = Relayed(event=emission.event, room=emission.room, seq=assignment.seq,
                                            emitted=not assignment.emitted)
        results: list[Relayed | None] = []
        answered: set[str] = set()
        for envelope, emission in zip(envelopes, emissions, strict=True):
            if emission is None:
                results.append(None)
                continue
            outcome = outcomes[envelope.id]
            results.append(outcome if envelope.id not in answered else replace(outcome, emitted=False))
            answered.add(envelope.id)
        return results
