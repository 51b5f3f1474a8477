"""Usage through the real consumer (group of this run, on this run's messaging topic): messages counted per
tenant, per day of the tenant's timezone, per category and direction, once per event however often it is
delivered; GetUsage and GetPlanLimits report them to the tenant's users, keys with usage:read and services."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, MESSAGE_STATUS_CHANGED, MessageView

pytestmark = pytest.mark.integration


def message_event(event_type: str, tenant_id: str, *, at: datetime | None = None, category: str | None = None,
                  direction: str = "inbound") -> EventEnvelope:
    moment = at or datetime.now(UTC)
    view = MessageView(id=str(uuid.uuid4()), conversation_id="c-1", contact_id="ct-1", wamid=f"wamid.{uuid.uuid4()}",
                       direction=direction, type="text", status="RECEIVED", content={"body": "hi"}, sent_at=moment,
                       created_at=moment)
    data = view.model_dump(mode="json", by_alias=True)
    if category is not None:
        data["category"] = category
    return make_event(event_type, tenant_id=tenant_id, data=data)


async def usage(harness, tenant_id: str, **dates: str) -> tenant_pb2.GetUsageResponse:
    return await harness.stub.GetUsage(tenant_pb2.GetUsageRequest(tenant_id=tenant_id, **dates),
                                       metadata=harness.service())


def counts(response: tenant_pb2.GetUsageResponse) -> dict[tuple[str, str, str], int]:
    return {(day.date, day.category, day.direction): day.count for day in response.days}


async def test_events_are_counted_once_per_category_and_direction(harness) -> None:
    tenant = await harness.new_tenant("Counting Hotel")
    topic = harness.settings.messaging_events_topic
    received = message_event(MESSAGE_RECEIVED, tenant.id)
    for event in (
        received,
        received,  # redelivered: counted once
        message_event(MESSAGE_STATUS_CHANGED, tenant.id, category="marketing"),  # counts nothing
        message_event(MESSAGE_CREATED, tenant.id, category="MARKETING", direction="outbound"),
        message_event(MESSAGE_CREATED, tenant.id, category="premium", direction="outbound"),  # unknown -> service
        message_event(MESSAGE_CREATED, tenant.id, category="utility", direction="outbound"),
        message_event(MESSAGE_RECEIVED, tenant.id),  # last on the (single, ordered) partition
    ):
        await harness.publish(topic, event, key="c-1")

    async def all_counted() -> tenant_pb2.GetUsageResponse | None:
        response = await usage(harness, tenant.id)
        return response if response.limits.messages_used_this_month >= 5 else None

    response = await harness.eventually(all_counted, what="the usage consumer")
    today = response.days[0].date
    assert counts(response) == {(today, "service", "inbound"): 2, (today, "marketing", "outbound"): 1,
                                (today, "service", "outbound"): 1, (today, "utility", "outbound"): 1}
    assert dict(response.totals_by_category) == {"service": 3, "marketing": 1, "utility": 1, "authentication": 0}
    assert response.limits.messages_used_this_month == 5  # the duplicate added nothing
    inbox = await harness.sql("SELECT count(*) AS n FROM inbox WHERE event_id = $1", received.id)
    assert inbox[0]["n"] == 1


async def test_applying_an_event_twice_counts_it_once(harness) -> None:
    tenant = await harness.new_tenant()
    event = message_event(MESSAGE_RECEIVED, tenant.id)
    assert await harness.runtime.usage.apply_message_event(event=event) is True
    assert await harness.runtime.usage.apply_message_event(event=event) is False
    status = message_event(MESSAGE_STATUS_CHANGED, tenant.id)
    assert await harness.runtime.usage.apply_message_event(event=status) is False
    response = await usage(harness, tenant.id)
    assert [day.count for day in response.days] == [1]


async def test_days_follow_the_tenants_timezone(harness) -> None:
    tenant = await harness.new_tenant("Kiritimati Resort", timezone="Pacific/Kiritimati")  # UTC+14
    late = datetime(2025, 1, 31, 12, 30, tzinfo=UTC)  # already 1 February on Kiritimati
    early = datetime(2025, 1, 31, 9, 0, tzinfo=UTC)  # still 31 January there
    for moment in (late, early):
        assert await harness.runtime.usage.apply_message_event(
            event=message_event(MESSAGE_RECEIVED, tenant.id, at=moment))
    january = await usage(harness, tenant.id, from_date="2025-01-01", to_date="2025-01-31")
    assert counts(january) == {("2025-01-31", "service", "inbound"): 1}
    february = await usage(harness, tenant.id, from_date="2025-02-01", to_date="2025-02-28")
    assert counts(february) == {("2025-02-01", "service", "inbound"): 1}
    only_to = await usage(harness, tenant.id, to_date="2025-02-10")  # from the first day of that month
    assert counts(only_to) == {("2025-02-01", "service", "inbound"): 1}
    assert february.limits.messages_used_this_month == 0  # neither is in the current month


async def test_plan_limits_report_this_months_use_and_an_exceeded_quota(harness) -> None:
    tenant = await harness.new_tenant("Busy Hotel")
    limits = await harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(tenant_id=tenant.id),
                                              metadata=harness.service())
    first_day = date.fromisoformat(limits.period_start)
    assert (limits.plan, limits.monthly_message_quota, limits.seats, limits.messages_used_this_month,
            limits.quota_exceeded) == ("starter", 10_000, 5, 0, False)
    assert first_day.day == 1 and date.fromisoformat(limits.period_end) >= first_day
    insert = ("INSERT INTO usage_daily (tenant_id, day, category, direction, count) VALUES ($1, $2, $3, $4, $5)")
    await harness.sql(insert, tenant.id, first_day - timedelta(days=1), "service", "inbound", 50_000,
                      tenant=tenant.id)  # last month does not count
    await harness.sql(insert, tenant.id, first_day, "marketing", "outbound", 9_999, tenant=tenant.id)
    almost = await harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(tenant_id=tenant.id),
                                              metadata=harness.service())
    assert (almost.messages_used_this_month, almost.quota_exceeded) == (9_999, False)
    await harness.sql(insert, tenant.id, first_day, "service", "inbound", 1, tenant=tenant.id)
    over = await harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(), metadata=harness.user(tenant.id,
                                                                                                      "attendant"))
    assert (over.tenant_id, over.messages_used_this_month, over.quota_exceeded) == (tenant.id, 10_000, True)


async def test_who_reads_usage(harness) -> None:
    mine, theirs = await harness.new_tenant("Reader Hotel"), await harness.new_tenant("Other Reader Hotel")
    await harness.runtime.usage.apply_message_event(event=message_event(MESSAGE_RECEIVED, theirs.id))
    for caller in (harness.user(mine.id, "attendant"), harness.user(mine.id, "admin"),
                   harness.api_key(mine.id, ["usage:read"])):
        # a user's or key's own tenant, whatever tenant the request names
        response = await harness.stub.GetUsage(tenant_pb2.GetUsageRequest(tenant_id=theirs.id), metadata=caller)
        assert response.limits.tenant_id == mine.id and list(response.days) == []
        limits = await harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(tenant_id=theirs.id),
                                                  metadata=caller)
        assert limits.tenant_id == mine.id
    no_scope = harness.api_key(mine.id, ["messages:send"])
    assert await harness.failure(harness.stub.GetUsage(tenant_pb2.GetUsageRequest(), metadata=no_scope)) == (
        grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    assert await harness.failure(harness.stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(),
                                                            metadata=no_scope)) == (
        grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    assert await harness.failure(harness.stub.GetUsage(tenant_pb2.GetUsageRequest(),
                                                       metadata=harness.service())) == (
        grpc.StatusCode.PERMISSION_DENIED, "TENANT_REQUIRED")
    assert await harness.failure(harness.stub.GetPlanLimits(
        tenant_pb2.GetPlanLimitsRequest(tenant_id="no-such-tenant"), metadata=harness.service())) == (
        grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
    assert [day.count for day in (await usage(harness, theirs.id)).days] == [1]


async def test_usage_dates_are_validated(harness) -> None:
    tenant = await harness.new_tenant()
    for dates, code in (
        ({"from_date": "2025-13-01"}, "INVALID_DATE"),
        ({"from_date": "yesterday"}, "INVALID_DATE"),
        ({"from_date": "2025-02-10", "to_date": "2025-02-01"}, "INVALID_DATE_RANGE"),
        ({"from_date": "2023-01-01", "to_date": "2025-01-01"}, "INVALID_DATE_RANGE"),
    ):
        assert await harness.failure(harness.stub.GetUsage(tenant_pb2.GetUsageRequest(tenant_id=tenant.id, **dates),
                                                           metadata=harness.service())) == (
            grpc.StatusCode.INVALID_ARGUMENT, code)


def status_event(tenant_id: str, message_id: str, status: str, *, at: datetime, category: str | None = None,
                 pricing_category: str | None = None, direction: str = "outbound") -> EventEnvelope:
    """`message.status_changed` of a message as messaging announces it: its current status last in the history."""
    view = MessageView(id=message_id, conversation_id="c-1", contact_id="ct-1", wamid=f"wamid.{message_id}",
                       direction=direction, type="template", status=status, content={},
                       status_history=[{"status": "SENT", "at": at - timedelta(seconds=5)},
                                       {"status": status, "at": at}],
                       pricing_category=pricing_category, category=category, sent_at=at - timedelta(seconds=5),
                       created_at=at - timedelta(seconds=6), updated_at=at + timedelta(seconds=1))
    return make_event(MESSAGE_STATUS_CHANGED, tenant_id=tenant_id, data=view)


async def test_delivered_messages_are_counted_once_per_message_in_their_category(harness) -> None:
    tenant = await harness.new_tenant("Delivery Hotel", timezone="Europe/Lisbon")
    apply = harness.runtime.usage.apply_message_event
    day = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 23:30 on 1 July in Lisbon (summer time)
    late = datetime(2026, 7, 2, 8, 0, tzinfo=UTC)
    promo, receipt, code, guest = (str(uuid.uuid4()) for _ in range(4))
    outcomes = [
        await apply(event=status_event(tenant.id, promo, "SENT", at=day, category="marketing")),  # not yet
        await apply(event=status_event(tenant.id, promo, "DELIVERED", at=day, category="marketing",
                                       pricing_category="utility")),  # the message's category wins
        await apply(event=status_event(tenant.id, promo, "READ", at=late, category="marketing")),  # already counted
        await apply(event=status_event(tenant.id, promo, "DELIVERED", at=day, category="marketing")),  # redelivered
        await apply(event=status_event(tenant.id, receipt, "READ", at=late, pricing_category="UTILITY")),  # READ first
        await apply(event=status_event(tenant.id, code, "DELIVERED", at=late,
                                       pricing_category="authentication_international")),
        await apply(event=status_event(tenant.id, str(uuid.uuid4()), "FAILED", at=late, category="marketing")),
        await apply(event=status_event(tenant.id, guest, "READ", at=late, direction="inbound")),  # not outbound
    ]
    assert outcomes == [False, True, False, False, True, True, False, False]

    july = await usage(harness, tenant.id, from_date="2026-07-01", to_date="2026-07-31")
    assert counts(july) == {("2026-07-01", "marketing", "delivered"): 1, ("2026-07-02", "utility", "delivered"): 1,
                            ("2026-07-02", "authentication", "delivered"): 1}
    assert dict(july.totals_by_category) == dict.fromkeys(("service", "utility", "marketing", "authentication"), 0)
    rows = await harness.sql("SELECT message_id, category, day FROM usage_delivered WHERE tenant_id = $1 "
                             "ORDER BY day, category", tenant.id, tenant=tenant.id)
    assert [(row["message_id"], row["category"], row["day"].isoformat()) for row in rows] == [
        (promo, "marketing", "2026-07-01"), (code, "authentication", "2026-07-02"), (receipt, "utility", "2026-07-02")]


async def test_delivered_counts_neither_in_the_quota_nor_in_the_totals(harness) -> None:
    tenant = await harness.new_tenant("Quota Delivery Hotel")
    apply = harness.runtime.usage.apply_message_event
    now = datetime.now(UTC)
    message_id = str(uuid.uuid4())
    created = message_event(MESSAGE_CREATED, tenant.id, category="marketing", direction="outbound", at=now)
    assert await apply(event=created)
    assert await apply(event=status_event(tenant.id, message_id, "DELIVERED", at=now, category="marketing"))
    response = await usage(harness, tenant.id)
    today = response.days[0].date
    assert counts(response) == {(today, "marketing", "outbound"): 1, (today, "marketing", "delivered"): 1}
    assert response.totals_by_category["marketing"] == 1
    assert response.limits.messages_used_this_month == 1


async def test_delivered_statuses_through_the_consumer(harness) -> None:
    tenant = await harness.new_tenant("Consumed Delivery Hotel")
    topic = harness.settings.messaging_events_topic
    message_id = str(uuid.uuid4())
    at = datetime.now(UTC)
    delivered = status_event(tenant.id, message_id, "DELIVERED", at=at, pricing_category="marketing")
    for event in (delivered, delivered, status_event(tenant.id, message_id, "READ", at=at),
                  message_event(MESSAGE_RECEIVED, tenant.id, at=at)):  # last on the single, ordered partition
        await harness.publish(topic, event, key="c-1")

    async def all_applied() -> tenant_pb2.GetUsageResponse | None:
        response = await usage(harness, tenant.id)
        return response if response.limits.messages_used_this_month >= 1 else None

    response = await harness.eventually(all_applied, what="the usage consumer")
    today = response.days[0].date
    assert counts(response) == {(today, "marketing", "delivered"): 1, (today, "service", "inbound"): 1}
