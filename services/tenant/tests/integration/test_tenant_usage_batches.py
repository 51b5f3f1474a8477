"""Usage counted a fetch at a time (UsageService.apply_message_events) on the real database: the batch's counts added
up per (day, category, direction) and written once each, every event counted once (a duplicate inside the batch, the
whole batch again), an outbound message counted as delivered once (DELIVERED then READ in one batch), and two tenants
in one batch each getting their own counts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import (
    MESSAGE_CREATED,
    MESSAGE_RECEIVED,
    MESSAGE_STATUS_CHANGED,
    SOURCE_BUSINESS_APP,
    MessageView,
)
from sqlalchemy import event

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def message_event(event_type: str, tenant_id: str, *, at: datetime, direction: str = "inbound",
                  category: str | None = None, source: str = "whatsapp") -> EventEnvelope:
    view = MessageView(id=str(uuid.uuid4()), conversation_id="c-1", contact_id="ct-1", wamid=f"wamid.{uuid.uuid4()}",
                       direction=direction, type="text", status="RECEIVED" if direction == "inbound" else "PENDING",
                       content={"body": "hi"}, sent_at=at, created_at=at, category=category, source=source)
    return make_event(event_type, tenant_id=tenant_id, data=view)


def received(tenant_id: str, at: datetime) -> EventEnvelope:
    return message_event(MESSAGE_RECEIVED, tenant_id, at=at)


def sent(tenant_id: str, at: datetime, category: str | None, *, source: str = "eva") -> EventEnvelope:
    return message_event(MESSAGE_CREATED, tenant_id, at=at, direction="outbound", category=category, source=source)


def status_event(tenant_id: str, message_id: str, status: str, *, at: datetime, category: str | None = None,
                 pricing_category: str | None = None) -> EventEnvelope:
    """`message.status_changed` of an outbound message as messaging announces it: its current status last."""
    view = MessageView(id=message_id, conversation_id="c-1", contact_id="ct-1", wamid=f"wamid.{message_id}",
                       direction="outbound", type="template", status=status, content={},
                       status_history=[{"status": "SENT", "at": at - timedelta(seconds=5)},
                                       {"status": status, "at": at}],
                       pricing_category=pricing_category, category=category, sent_at=at - timedelta(seconds=5),
                       created_at=at - timedelta(seconds=6), updated_at=at + timedelta(seconds=1))
    return make_event(MESSAGE_STATUS_CHANGED, tenant_id=tenant_id, data=view)


async def usage_rows(harness: Any, tenant_id: str) -> dict[tuple[str, str, str], int]:
    rows = await harness.sql("SELECT day, category, direction, count FROM usage_daily WHERE tenant_id = $1",
                             tenant_id, tenant=tenant_id)
    return {(row["day"].isoformat(), row["category"], row["direction"]): row["count"] for row in rows}


@contextlib.contextmanager
def usage_writes(harness: Any) -> Iterator[list[str]]:
    """The usage_daily upserts the service sends while inside, each as its parameters' text (to find a tenant's):
    asyncpg's query logger on every connection checked out meanwhile (the upsert is written directly on asyncpg).
    The logger reports a statement once it completed; the caller's commit came after, so all are in by the exit."""
    writes: list[str] = []

    def record(query: Any) -> None:
        if query.query.lstrip().upper().startswith("INSERT INTO USAGE_DAILY"):
            writes.append(repr(query.args))

    listening: list[Any] = []

    def checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver_connection = dbapi_connection.driver_connection
        if driver_connection not in listening:
            driver_connection.add_query_logger(record)
            listening.append(driver_connection)

    engine = harness.runtime.engine.sync_engine
    event.listen(engine, "checkout", checked_out)
    try:
        yield writes
    finally:
        event.remove(engine, "checkout", checked_out)
        for driver_connection in listening:
            driver_connection.remove_query_logger(record)


async def test_a_batch_is_added_up_and_written_once_per_day_category_and_direction(harness) -> None:
    tenant = (await harness.new_tenant("Batch Counting Hotel")).id
    promo, receipt = str(uuid.uuid4()), str(uuid.uuid4())
    duplicate = received(tenant, DAY1)
    batch = [
        duplicate, received(tenant, DAY1), duplicate, received(tenant, DAY1 + timedelta(hours=2)),
        received(tenant, DAY2),
        sent(tenant, DAY1, "marketing"), sent(tenant, DAY1, "MARKETING"), sent(tenant, DAY1, "utility"),
        sent(tenant, DAY1, "premium"),  # not a category: service
        sent(tenant, DAY1, "marketing", source=SOURCE_BUSINESS_APP),  # an echo counts nothing
        status_event(tenant, promo, "SENT", at=DAY1, category="marketing"),  # counts nothing
        status_event(tenant, promo, "DELIVERED", at=DAY1, category="marketing"),
        status_event(tenant, promo, "READ", at=DAY1 + timedelta(hours=1), category="marketing"),  # counted already
        status_event(tenant, receipt, "DELIVERED", at=DAY2, pricing_category="utility"),
    ]
    usage = harness.runtime.usage

    with usage_writes(harness) as writes:
        counted = await usage.apply_message_events(batch)

    assert counted == 10  # 4 + 1 received (one duplicate), 4 sent, 2 delivered
    expected = {
        ("2026-03-10", "service", "inbound"): 3, ("2026-03-11", "service", "inbound"): 1,
        ("2026-03-10", "marketing", "outbound"): 2, ("2026-03-10", "utility", "outbound"): 1,
        ("2026-03-10", "service", "outbound"): 1,
        ("2026-03-10", "marketing", "delivered"): 1, ("2026-03-11", "utility", "delivered"): 1,
    }
    assert await usage_rows(harness, tenant) == expected
    assert len([w for w in writes if tenant in w]) == len(expected)  # one upsert per (day, category, direction)
    delivered = await harness.sql("SELECT message_id FROM usage_delivered WHERE tenant_id = $1 ORDER BY message_id",
                                  tenant, tenant=tenant)
    assert [row["message_id"] for row in delivered] == sorted([promo, receipt])

    with usage_writes(harness) as writes:
        assert await usage.apply_message_events(batch) == 0  # the same fetch again
    assert [w for w in writes if tenant in w] == []
    assert await usage_rows(harness, tenant) == expected
    assert await usage.apply_message_event(event=duplicate) is False


async def test_two_tenants_in_one_batch_each_get_their_own_counts(harness) -> None:
    first = (await harness.new_tenant("First Batch Hotel")).id
    second = (await harness.new_tenant("Second Batch Hotel", timezone="Pacific/Kiritimati")).id  # UTC+14
    late = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)  # 11 March on Kiritimati
    message_id = str(uuid.uuid4())

    counted = await harness.runtime.usage.apply_message_events([
        received(first, late), received(second, late), sent(first, late, "utility"),
        received(second, late), sent(second, late, "authentication"),
        status_event(second, message_id, "DELIVERED", at=late, category="authentication"),
        received(first, late)])

    assert counted == 7
    assert await usage_rows(harness, first) == {("2026-03-10", "service", "inbound"): 2,
                                                ("2026-03-10", "utility", "outbound"): 1}
    assert await usage_rows(harness, second) == {("2026-03-11", "service", "inbound"): 2,
                                                 ("2026-03-11", "authentication", "outbound"): 1,
                                                 ("2026-03-11", "authentication", "delivered"): 1}
