"""Housekeeping of the outbox and the inbox, which would otherwise grow with every event for ever.

- `outbox`: a row is only needed until the relay published it; published rows are kept `outbox_retention` (three
  days by default, to read what a service published while investigating) and deleted after. Unpublished rows are
  never deleted, however old: they are the backlog.
- `inbox`: a consumer's claim of an event id only has to outlive every redelivery of that event, which Kafka bounds
  by its retention (seven days by default): claims are kept `inbox_retention` (fourteen days by default, which must
  stay above the longest topic retention) and deleted after.

Deletes go in batches (`batch` rows per statement, each its own transaction) so a first run on a large table never
holds a long lock or builds a huge transaction. The outbox relay's leader runs `prune` every few minutes (one
replica per database does it); BRIN indexes on the time columns (`housekeeping_indexes` in
`eva_common.migrations`) make a pass with nothing to delete cost a few index pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from eva_common.db import direct_transaction
from eva_common.metrics import HOUSEKEEPING_DELETED
from eva_common.settings import DatabaseSettings

logger = logging.getLogger("eva.housekeeping")

RELAY_ROLE = "SELECT set_config('app.role', 'outbox-relay', true)"  # the outbox's RLS lets only the relay read across
_INBOX_EXISTS = "SELECT to_regclass('inbox') IS NOT NULL"
_PRUNE_OUTBOX = ("DELETE FROM outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM outbox WHERE created_at < $1 "
                 "AND sent_at IS NOT NULL LIMIT $2))")
_PRUNE_INBOX = "DELETE FROM inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM inbox WHERE processed_at < $1 LIMIT $2))"


@dataclass(frozen=True, slots=True)
class Retention:
    outbox: timedelta = timedelta(days=3)
    inbox: timedelta = timedelta(days=14)
    batch: int = 5000
    max_batches: int = 200  # per table and pass: a pass ends, the next one continues

    @classmethod
    def of(cls, settings: DatabaseSettings) -> Retention:
        """EVA_OUTBOX_RETENTION_HOURS and EVA_INBOX_RETENTION_DAYS."""
        return cls(outbox=timedelta(hours=settings.outbox_retention_hours),
                   inbox=timedelta(days=settings.inbox_retention_days))


@dataclass(frozen=True, slots=True)
class Pruned:
    outbox: int
    inbox: int


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "DELETE 5000"


async def prune(engine: AsyncEngine, retention: Retention, *, now: datetime | None = None) -> Pruned:
    """Deletes the published outbox rows and the inbox claims past their retention; returns how many went."""
    moment = now or datetime.now(UTC)
    deleted = {"outbox": 0, "inbox": 0}
    async with direct_transaction(engine) as connection:
        has_inbox = bool(await connection.fetchval(_INBOX_EXISTS))
    plan = [("outbox", _PRUNE_OUTBOX, moment - retention.outbox)]
    if has_inbox:
        plan.append(("inbox", _PRUNE_INBOX, moment - retention.inbox))
    for table, statement, cutoff in plan:
        for _ in range(retention.max_batches):
            async with direct_transaction(engine) as connection:
                await connection.execute(RELAY_ROLE)
                count = _count(await connection.execute(statement, cutoff, retention.batch))
            deleted[table] += count
            if count < retention.batch:
                break
        if deleted[table]:
            HOUSEKEEPING_DELETED.labels(table).inc(deleted[table])
            logger.info("housekeeping deleted rows", extra={"table": table, "rows": deleted[table]})
    return Pruned(outbox=deleted["outbox"], inbox=deleted["inbox"])
