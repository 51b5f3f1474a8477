"""The idempotent-consumer inbox and the outbox/inbox tables the migration helpers create, on a fresh PostgreSQL
database of the test profile."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic import op
from alembic.migration import MigrationContext
from alembic.operations import Operations
from eva_common.db import SessionFactory, create_engine, session_factory, transaction
from eva_common.inbox import claim_event, claim_events
from eva_common.migrations import create_inbox_table, create_outbox_table, drop_outbox_rls, outbox_rls
from eva_common.outbox import OutboxEvent, enqueue
from eva_events.envelope import make_event
from eva_testing.db import empty_database
from eva_testing.infra import test_infra
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

pytestmark = pytest.mark.integration


def migrate(*steps: Callable[[], object]) -> Callable[[Connection], None]:
    """Runs revision-style steps (they call alembic's `op`) on a synchronous connection."""
    def run(connection: Connection) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            for step in steps:
                step()
    return run


def execute_all(statements: Callable[[], list[str]]) -> Callable[[], None]:
    def step() -> None:
        for statement in statements():
            op.execute(statement)
    return step


@pytest_asyncio.fixture(loop_scope="session")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with empty_database(test_infra(), "inbox") as database:
        engine = create_engine(database.owner_url, pool_size=2)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate(create_outbox_table, create_inbox_table))
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


async def test_an_event_is_claimed_once_per_consumer(sessions: SessionFactory) -> None:
    event_id = str(uuid.uuid4())
    async with transaction(sessions) as session:
        assert await claim_event(session, consumer="usage", event_id=event_id)
        assert not await claim_event(session, consumer="usage", event_id=event_id)  # redelivered in the same batch
    async with transaction(sessions) as session:
        assert not await claim_event(session, consumer="usage", event_id=event_id)  # redelivered later
        assert await claim_event(session, consumer="audit", event_id=event_id)  # another consumer applies it too


async def test_a_batch_is_claimed_in_one_call_each_id_applied_once(sessions: SessionFactory) -> None:
    seen, fresh, other = (str(uuid.uuid4()) for _ in range(3))
    async with transaction(sessions) as session:
        assert await claim_event(session, consumer="usage", event_id=seen)
    async with transaction(sessions) as session:
        claims = await claim_events(session, consumer="usage", event_ids=[fresh, seen, fresh, other])
        # the first copy of a new id is applied; a copy later in the batch, and an id claimed before, are not
        assert [claims.first(event_id) for event_id in (fresh, seen, fresh, other)] == [True, False, False, True]
        assert not (await claim_events(session, consumer="usage", event_ids=[fresh, other])).first(fresh)
        assert (await claim_events(session, consumer="audit", event_ids=[fresh])).first(fresh)  # its own inbox
    async with transaction(sessions) as session:
        assert (await claim_events(session, consumer="usage", event_ids=[])).first(fresh) is False


async def test_a_claim_rolled_back_with_its_effects_is_not_kept(sessions: SessionFactory, engine: AsyncEngine) -> None:
    event_id = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            assert await claim_event(session, consumer="usage", event_id=event_id)
            raise RuntimeError("the effects failed")
    async with engine.begin() as connection:  # a plain connection claims as well as a session
        assert await claim_event(connection, consumer="usage", event_id=event_id)
        assert not await claim_event(connection, consumer="usage", event_id=event_id)


async def test_the_outbox_table_takes_what_enqueue_writes(sessions: SessionFactory, engine: AsyncEngine) -> None:
    event = make_event("thing.happened", tenant_id="t1", data={"n": 1})
    async with transaction(sessions) as session:
        await enqueue(session, topic="things.v1", key="k1", event=event)
    async with transaction(sessions) as session:
        stored = (await session.exec(select(OutboxEvent).where(OutboxEvent.event_id == event.id))).one()
    assert (stored.topic, stored.msg_key, stored.tenant_id, stored.sent_at, stored.attempts) == (
        "things.v1", "k1", "t1", None, 0)
    async with engine.connect() as connection:
        indexes = await connection.run_sync(lambda sync: sa.inspect(sync).get_indexes("outbox"))
    assert any(index["name"] == "outbox_unsent" for index in indexes)


async def test_outbox_row_level_security_goes_on_and_off(engine: AsyncEngine) -> None:
    async def policies() -> set[str]:
        async with engine.connect() as connection:
            rows = await connection.exec_driver_sql("SELECT policyname FROM pg_policies WHERE tablename = 'outbox'")
            return {row[0] for row in rows}

    async with engine.begin() as connection:
        await connection.run_sync(migrate(execute_all(outbox_rls)))
    assert await policies() == {"tenant_isolation", "outbox_relay"}
    async with engine.begin() as connection:
        await connection.run_sync(migrate(execute_all(drop_outbox_rls)))
    assert await policies() == set()
