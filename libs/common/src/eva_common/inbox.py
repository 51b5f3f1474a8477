"""The idempotent-consumer inbox, beside the outbox: a consumer claims an event id in the same transaction as the
event's effects, so a redelivered event (Kafka is at least once) is recognised and applied only once.

The table (`inbox`: consumer, event_id, processed_at) is created by `eva_common.migrations.create_inbox_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from eva_common.db import driver

INBOX_TABLE = "inbox"

_inbox = sa.table(INBOX_TABLE, sa.column("consumer", sa.Text), sa.column("event_id", sa.Text))


_CLAIM = f"INSERT INTO {INBOX_TABLE} (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id"
_CLAIM_MANY = (f"INSERT INTO {INBOX_TABLE} (consumer, event_id) SELECT $1, id FROM unnest($2::text[]) AS id "
               "ON CONFLICT DO NOTHING RETURNING event_id")


async def claim_event(db: AsyncSession | AsyncConnection, *, consumer: str, event_id: str) -> bool:
    """Records, in `db`'s transaction, that `consumer` applies `event_id`: True the first time, False when it already
    did (a redelivery, whose effects must then be skipped). A session's claim is written directly (every consumed
    event runs it)."""
    if isinstance(db, AsyncSession):
        return await (await driver(db)).fetchval(_CLAIM, consumer, event_id) is not None
    statement = (
        pg_insert(_inbox).values(consumer=consumer, event_id=event_id).on_conflict_do_nothing()
        .returning(_inbox.c.event_id)
    )
    return (await db.execute(statement)).first() is not None


class Claims:
    """The event ids of a batch this consumer claimed, each to be applied once: `first(event_id)` is True for the
    first occurrence of an id claimed now, False for one claimed before (a redelivery) and for a second copy of an id
    in the same batch."""

    def __init__(self, claimed: set[str]) -> None:
        self._unapplied = claimed

    def first(self, event_id: str) -> bool:
        if event_id in self._unapplied:
            self._unapplied.discard(event_id)
            return True
        return False


async def claim_events(session: AsyncSession, *, consumer: str, event_ids: Sequence[str]) -> Claims:
    """`claim_event` for a batch's event ids in one statement (in `session`'s transaction)."""
    if not event_ids:
        return Claims(set())
    rows = await (await driver(session)).fetch(_CLAIM_MANY, consumer, list(dict.fromkeys(event_ids)))
    return Claims({row[0] for row in rows})
