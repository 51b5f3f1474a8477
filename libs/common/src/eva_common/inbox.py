"""The idempotent-consumer inbox, beside the outbox: a consumer claims an event id in the same transaction as the
event's effects, so a redelivered event (Kafka is at least once) is recognised and applied only once.

The table (`inbox`: consumer, event_id, processed_at) is created by `eva_common.migrations.create_inbox_table`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

INBOX_TABLE = "inbox"

_inbox = sa.table(INBOX_TABLE, sa.column("consumer", sa.Text), sa.column("event_id", sa.Text))


async def claim_event(db: AsyncSession | AsyncConnection, *, consumer: str, event_id: str) -> bool:
    """Records, in `db`'s transaction, that `consumer` applies `event_id`: True the first time, False when it already
    did (a redelivery, whose effects must then be skipped)."""
    statement = (
        pg_insert(_inbox).values(consumer=consumer, event_id=event_id).on_conflict_do_nothing()
        .returning(_inbox.c.event_id)
    )
    connection = await db.connection() if isinstance(db, AsyncSession) else db
    return (await connection.execute(statement)).first() is not None
