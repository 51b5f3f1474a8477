"""The /n8n API's idempotency keys on the real database (the app role, row-level security): the first request
claims, concurrent ones wait for its answer (or get 409 after the wait), another body is 422, a dead request's
claim is taken over after its lease, answers a retry could change release the key, keys are per API key and
tenant, and a key expires."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from eva_common.db import create_engine, session_factory
from eva_common.errors import AlreadyExists, FailedPrecondition
from eva_testing.db import TestDatabase
from n8n_service.idempotency import Claim, IdempotencyStore, StoredAnswer

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(database: TestDatabase):  # type: ignore[no-untyped-def]
    engine = create_engine(database.app_url, pool_size=20)
    sessions = session_factory(engine)

    def build(**options: float) -> IdempotencyStore:
        return IdempotencyStore(sessions=sessions, poll_seconds=0.02, **options)

    yield build
    await engine.dispose()


def tenant() -> str:
    return str(uuid.uuid4())


async def test_the_first_request_claims_and_later_ones_get_its_answer(stores) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(), tenant()
    claim = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k1", fingerprint="h1")
    assert isinstance(claim, Claim)
    await store.finish(claim, status=201, body={"id": "m-1", "status": "PENDING"})
    again = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k1", fingerprint="h1")
    assert again == StoredAnswer(201, {"id": "m-1", "status": "PENDING"})
    with pytest.raises(FailedPrecondition) as reused:
        await store.claim(tenant_id=who, api_key_id="apikey:1", key="k1", fingerprint="h2")
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"
    # another API key, or another tenant, has keys of its own
    assert isinstance(await store.claim(tenant_id=who, api_key_id="apikey:2", key="k1", fingerprint="h2"), Claim)
    assert isinstance(await store.claim(tenant_id=tenant(), api_key_id="apikey:1", key="k1", fingerprint="h2"), Claim)


async def test_concurrent_requests_wait_for_the_first_answer(stores) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(wait_seconds=5.0), tenant()
    tasks = [asyncio.create_task(store.claim(tenant_id=who, api_key_id="apikey:1", key="same", fingerprint="h"))
             for _ in range(8)]
    await asyncio.sleep(0.5)
    done = [task for task in tasks if task.done()]
    assert len(done) == 1 and isinstance(done[0].result(), Claim)  # one claims, the 7 others wait for its answer
    await store.finish(done[0].result(), status=201, body={"id": "m-1"})
    answers = await asyncio.gather(*(task for task in tasks if task is not done[0]))
    assert answers == [StoredAnswer(201, {"id": "m-1"})] * 7


async def test_a_request_still_at_work_after_the_wait_is_409_with_retry_after(stores) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(wait_seconds=0.3), tenant()
    assert isinstance(await store.claim(tenant_id=who, api_key_id="apikey:1", key="slow", fingerprint="h"), Claim)
    with pytest.raises(AlreadyExists) as busy:
        await store.claim(tenant_id=who, api_key_id="apikey:1", key="slow", fingerprint="h")
    assert busy.value.code == "IDEMPOTENCY_IN_PROGRESS" and busy.value.retry_after == 1


async def test_a_dead_requests_claim_is_taken_over_after_its_lease(stores) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(lease_seconds=0.3, wait_seconds=0.0), tenant()
    dead = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h")
    assert isinstance(dead, Claim)
    with pytest.raises(AlreadyExists):
        await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h")
    await asyncio.sleep(0.4)
    taker = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h")
    assert isinstance(taker, Claim) and taker.owner != dead.owner
    await store.finish(dead, status=201, body={"id": "late"})  # the dead owner's answer no longer counts
    await store.finish(taker, status=201, body={"id": "m-2"})
    assert await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h") == StoredAnswer(
        201, {"id": "m-2"})


async def test_answers_a_retry_could_change_release_the_key(stores) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(), tenant()
    for status in (503, 429, 409, 500):
        claim = await store.claim(tenant_id=who, api_key_id="apikey:1", key=f"k{status}", fingerprint="h")
        assert isinstance(claim, Claim)
        await store.finish(claim, status=status, body={"code": "X"})
        assert isinstance(await store.claim(tenant_id=who, api_key_id="apikey:1", key=f"k{status}",
                                            fingerprint="h"), Claim), status
    refused = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k422", fingerprint="h")
    assert isinstance(refused, Claim)
    await store.finish(refused, status=422, body={"code": "WINDOW_CLOSED"})
    assert await store.claim(tenant_id=who, api_key_id="apikey:1", key="k422", fingerprint="h") == StoredAnswer(
        422, {"code": "WINDOW_CLOSED"})


async def test_a_key_expires(stores, database: TestDatabase) -> None:  # type: ignore[no-untyped-def]
    store, who = stores(ttl_seconds=0.3), tenant()
    first = await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h1")
    assert isinstance(first, Claim)
    await store.finish(first, status=201, body={"id": "m-1"})
    await asyncio.sleep(0.4)
    # expired: the key is free again, for any body, and the expired row is gone
    assert isinstance(await store.claim(tenant_id=who, api_key_id="apikey:1", key="k", fingerprint="h2"), Claim)
    connection = await asyncpg.connect(database.app_dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", who)
            hashes = [row["request_hash"] for row in await connection.fetch(
                "SELECT request_hash FROM n8n_idempotency_keys")]
        assert hashes == ["h2"]
        async with connection.transaction():  # no tenant: nothing (fail-closed)
            assert await connection.fetch("SELECT 1 FROM n8n_idempotency_keys") == []
    finally:
        await connection.close()


async def test_the_purge_each_claim_runs_reads_only_the_expired_keys(database: TestDatabase) -> None:
    """A busy tenant holds a day of keys; the purge before every claim must not read them all. With 3,000 live keys
    and a few expired, the planner takes the (tenant_id, expires_at) index and the statement touches only the expired
    rows' pages."""
    who = tenant()
    connection = await asyncpg.connect(database.app_dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", who)
            await connection.execute(
                "INSERT INTO n8n_idempotency_keys (tenant_id, api_key_id, key, request_hash, state, owner, expires_at) "
                "SELECT $1, 'apikey:1', 'k' || n, 'h', 'done', gen_random_uuid(), "
                "now() + CASE WHEN n <= 5 THEN interval '-1 hour' ELSE interval '20 hours' END "
                "FROM generate_series(1, 3000) AS n", who)
        owner = await asyncpg.connect(database.owner_dsn)
        try:
            await owner.execute("ANALYZE n8n_idempotency_keys")
        finally:
            await owner.close()
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", who)
            plan = "\n".join(row[0] for row in await connection.fetch(
                "EXPLAIN DELETE FROM n8n_idempotency_keys WHERE tenant_id = $1 AND expires_at <= now()", who))
            deleted = await connection.execute(
                "DELETE FROM n8n_idempotency_keys WHERE tenant_id = $1 AND expires_at <= now()", who)
    finally:
        await connection.close()
    assert "n8n_idempotency_expiry" in plan, plan
    assert deleted == "DELETE 5"
