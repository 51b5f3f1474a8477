"""What a messaging event adds to the usage, the tenant's calendar, and report ranges (no I/O)."""

from datetime import UTC, date, datetime

import pytest
from eva_common.errors import InvalidArgument
from eva_events.envelope import make_event
from tenant_service.usage.domain import counted_message, date_range, local_day, month_of

AT = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)


def _event(event_type: str, **data: object):
    return make_event(event_type, tenant_id="t1", data={"createdAt": AT.isoformat(), **data})


def test_received_messages_count_as_inbound_service() -> None:
    counted = counted_message(_event("message.received"))
    assert counted is not None and (counted.direction, counted.category, counted.at) == ("inbound", "service", AT)


@pytest.mark.parametrize(("category", "expected"), [
    ("marketing", "marketing"), ("UTILITY", "utility"), (" authentication ", "authentication"),
    ("service", "service"), ("premium", "service"), (None, "service"), (42, "service"),
])
def test_created_messages_count_as_outbound_in_their_category(category: object, expected: str) -> None:
    data = {} if category is None else {"category": category}
    counted = counted_message(_event("message.created", **data))
    assert counted is not None and (counted.direction, counted.category) == ("outbound", expected)


@pytest.mark.parametrize("event_type", ["message.status_changed", "message.updated", "conversation.created"])
def test_other_events_count_nothing(event_type: str) -> None:
    assert counted_message(_event(event_type, category="marketing")) is None


def test_a_coexistence_echo_counts_nothing_and_a_message_sent_through_eva_does() -> None:
    assert counted_message(_event("message.created", source="business_app", category="service")) is None
    assert counted_message(_event("message.created", source="eva", category="utility")) is not None


def test_a_missing_or_bad_created_at_falls_back_to_the_event_time() -> None:
    event = make_event("message.received", tenant_id="t1", data={"createdAt": "not a time"})
    counted = counted_message(event)
    assert counted is not None and counted.at == event.occurred_at


@pytest.mark.parametrize(("timezone", "expected"), [
    ("UTC", date(2026, 3, 31)), ("Europe/Lisbon", date(2026, 4, 1)),  # Lisbon is on summer time (UTC+1)
    ("America/Sao_Paulo", date(2026, 3, 31)), ("Pacific/Kiritimati", date(2026, 4, 1)),
    ("Not/AZone", date(2026, 3, 31)),  # an unknown zone counts in UTC
])
def test_days_are_the_tenants(timezone: str, expected: date) -> None:
    assert local_day(AT, timezone) == expected


@pytest.mark.parametrize(("day", "first", "last"), [
    (date(2024, 2, 10), date(2024, 2, 1), date(2024, 2, 29)),
    (date(2025, 2, 28), date(2025, 2, 1), date(2025, 2, 28)),
    (date(2025, 12, 31), date(2025, 12, 1), date(2025, 12, 31)),
    (date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 31)),
])
def test_month_bounds(day: date, first: date, last: date) -> None:
    assert month_of(day) == (first, last)


def test_report_ranges_default_to_the_month() -> None:
    today = date(2026, 4, 15)
    assert date_range(from_date="", to_date="", today=today) == (date(2026, 4, 1), date(2026, 4, 30))
    assert date_range(from_date="2026-03-20", to_date="", today=today) == (date(2026, 3, 20), date(2026, 4, 30))
    assert date_range(from_date="", to_date="2026-02-10", today=today) == (date(2026, 2, 1), date(2026, 2, 10))
    assert date_range(from_date="2025-04-15", to_date="2026-04-15", today=today) == (
        date(2025, 4, 15), date(2026, 4, 15))  # 366 days, both ends included: the longest report


@pytest.mark.parametrize(("from_date", "to_date", "code"), [
    ("2026-02-30", "", "INVALID_DATE"), ("", "04/15/2026", "INVALID_DATE"),
    ("2026-04-10", "2026-04-09", "INVALID_DATE_RANGE"), ("2025-04-14", "2026-04-15", "INVALID_DATE_RANGE"),
])
def test_invalid_ranges(from_date: str, to_date: str, code: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        date_range(from_date=from_date, to_date=to_date, today=date(2026, 4, 15))
    assert raised.value.code == code
