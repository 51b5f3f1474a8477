"""The fan-out of Eva's events to the tenants' webhook subscriptions: a fetch of messaging.events.v1 or
conversation.events.v1 records in one transaction. Each event is applied once (the consumer's inbox; the unique
(subscription, event) key backs it up), mapped to its public type (`events.py`), and queued as one delivery for each
subscription of its tenant that asked for that type — active or paused (a paused subscription's events queue and
wait for it to be resumed). Every public event of a tenant gets the tenant's next `seq` (a counter row, in the same
transaction), in the order of the fetch: gapless per tenant, the same for every subscription of one event, and is
written to the tenant's event log (`event_log.py`, for `GET /n8n/events`), whose rows past the retention go.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from eva_common.db import SessionFactory, driver, per_tenant, transaction
from eva_common.inbox import claim_events
from eva_events.envelope import EventEnvelope

from n8n_service.event_log import LOG_EVENTS
from n8n_service.events import PublicEvent, to_public
from n8n_service.metrics import DELIVERIES_CREATED

logger = logging.getLogger(__name__)

_SUBSCRIBERS = "SELECT id, events FROM webhook_subscriptions WHERE tenant_id = $1"
_NEXT_SEQ = (
    "INSERT INTO webhook_sequences (tenant_id, last_seq) VALUES ($1, $2) ON CONFLICT (tenant_id) "
    "DO UPDATE SET last_seq = webhook_sequences.last_seq + EXCLUDED.last_seq RETURNING last_seq"
)
_QUEUE = (
    "INSERT INTO webhook_deliveries (tenant_id, subscription_id, event_id, event_type, ordering_key, envelope, "
    "state, attempts, next_attempt_at, expires_at, created_at, updated_at) "
    "SELECT $1, u.subscription_id, u.event_id, u.event_type, u.ordering_key, u.envelope::jsonb, 'pending', 0, now(), "
    "now() + make_interval(secs => $7), now(), now() "
    "FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY "
    "AS u(subscription_id, event_id, event_type, ordering_key, envelope, position) ORDER BY u.position "
    "ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING event_type"
)


class FanOut:
    def __init__(self, *, sessions: SessionFactory, consumer_name: str, max_age_seconds: float,
                 log_retention_seconds: float = 7 * 24 * 3600.0, on_queued: Callable[[], None] | None = None) -> None:
        self._on_queued = on_queued  # told once deliveries were queued and committed (the delivery worker's wake)
        self._sessions = sessions
        self._consumer = consumer_name
        self._max_age = max_age_seconds
        self._log_retention = log_retention_seconds

    async def apply(self, envelopes: Sequence[EventEnvelope]) -> int:
        """Queues the deliveries of a fetch's events (one transaction); the number of deliveries queued."""
        public = [event for event in map(to_public, envelopes) if event is not None]
        if not public:
            return 0
        queued = 0
        async with transaction(self._sessions) as session:
            claims = await claim_events(session, consumer=self._consumer, event_ids=[e.event_id for e in public])
            fresh = [event for event in public if claims.first(event.event_id)]
            connection = await driver(session)
            async for tenant_id, events in per_tenant(session, fresh, lambda event: event.tenant_id):
                last = await connection.fetchval(_NEXT_SEQ, tenant_id, len(events))
                seqs = [last - len(events) + 1 + index for index in range(len(events))]
                bodies = [_body(event, seq) for event, seq in zip(events, seqs, strict=True)]
                await connection.execute(LOG_EVENTS, tenant_id, seqs, [event.event_id for event in events],
                                         [event.type for event in events], bodies, self._log_retention)
                subscribers = [(row["id"], frozenset(row["events"]))
                               for row in await connection.fetch(_SUBSCRIBERS, tenant_id)]
                rows = [(sid, event, body) for event, body in zip(events, bodies, strict=True)
                        for sid, types in subscribers if event.type in types]
                if not rows:
                    continue
                created = await connection.fetch(
                    _QUEUE, tenant_id, [sid for sid, _, _ in rows], [event.event_id for _, event, _ in rows],
                    [event.type for _, event, _ in rows], [event.ordering_key for _, event, _ in rows],
                    [body for _, _, body in rows], self._max_age)
                for row in created:
                    DELIVERIES_CREATED.labels(row["event_type"]).inc()
                queued += len(created)
        if queued and self._on_queued is not None:
            self._on_queued()
        if queued:
            logger.info("webhook deliveries queued", extra={"deliveries": queued, "events": len(public)})
        return queued


def _body(event: PublicEvent, seq: int) -> str:
    return json.dumps(event.envelope(seq), separators=(",", ":"), ensure_ascii=False)


