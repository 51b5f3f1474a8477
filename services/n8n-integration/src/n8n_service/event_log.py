"""The tenants' event log (`integration_events`): every public event the fan-out maps, with the tenant's `seq`, for
flows that poll (`GET /n8n/events?afterSeq=`) instead of, or besides, receiving webhooks. Rows older than the
retention are pruned by the fan-out as it writes a tenant's new ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eva_common.db import SessionFactory, driver, transaction

# written by the fan-out, in its transaction, a tenant's batch at a time
LOG_EVENTS = (
    "WITH pruned AS (DELETE FROM integration_events WHERE tenant_id = $1 "
    "AND created_at < now() - make_interval(secs => $6)) "
    "INSERT INTO integration_events (tenant_id, seq, event_id, event_type, envelope, created_at) "
    "SELECT $1, u.seq, u.event_id, u.event_type, u.envelope::jsonb, now() "
    "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS u(seq, event_id, event_type, envelope)"
)
_PAGE = ("SELECT envelope::text AS body FROM integration_events WHERE tenant_id = $1 AND seq > $2 "
         "ORDER BY seq LIMIT $3")
_BOUNDS = "SELECT min(seq) AS oldest, max(seq) AS newest FROM integration_events WHERE tenant_id = $1"


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[dict[str, Any]]  # envelopes {id, type, tenantId, occurredAt, seq, data}, by seq
    next_after_seq: int  # ask again with this
    oldest_seq: int | None  # the oldest kept: a caller whose afterSeq is below it missed what was pruned
    newest_seq: int | None


class EventLog:
    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def page(self, *, tenant_id: str, after_seq: int, limit: int) -> EventPage:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            connection = await driver(session)
            rows = await connection.fetch(_PAGE, tenant_id, after_seq, limit)
            bounds = await connection.fetchrow(_BOUNDS, tenant_id)
        items = [json.loads(row["body"]) for row in rows]
        return EventPage(items=items, next_after_seq=int(items[-1]["seq"]) if items else after_seq,
                         oldest_seq=bounds["oldest"] if bounds else None,
                         newest_seq=bounds["newest"] if bounds else None)
