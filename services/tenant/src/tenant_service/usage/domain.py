"""What is counted from messaging events, the tenant's month, and what GetPlanLimits / GetUsage return.

- `message.received` counts one inbound `service` message.
- `message.created` (outbound, sent by attendants, n8n or templates) counts one outbound message in `data.category`
  when it is one of the four categories, else `service`; a coexistence echo (`source: business_app`, sent from the
  WhatsApp Business app, not billed by Meta) counts nothing.
- `message.status_changed` of an outbound message to DELIVERED or READ counts it once more, as `delivered`, in its
  pricing category (`data.category`, else `data.pricingCategory`, else `service`) on the day of that status: once
  per message id (usage_delivered), so a READ after DELIVERED or a redelivered status never counts twice. Other
  statuses count nothing.
- Every inbound and outbound message counts against the plan's monthly message quota; `delivered` is a second view
  of outbound messages and counts neither against the quota nor in the totals per category.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from eva_common.errors import InvalidArgument
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, MESSAGE_STATUS_CHANGED, SOURCE_BUSINESS_APP

CATEGORIES = ("service", "utility", "marketing", "authentication")
DEFAULT_CATEGORY = "service"
INBOUND = "inbound"
OUTBOUND = "outbound"
DELIVERED = "delivered"
COUNTED_DIRECTIONS = (INBOUND, OUTBOUND)  # what the quota and the totals per category count
DELIVERED_STATUSES = frozenset({"DELIVERED", "READ"})
MAX_RANGE_DAYS = 366


@dataclass(frozen=True, slots=True)
class CountedMessage:
    direction: str
    category: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    """An outbound message Meta delivered (or the guest read), to count once in its pricing category."""

    message_id: str
    category: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PlanLimitsView:
    tenant_id: str
    plan: str
    monthly_message_quota: int
    seats: int
    messages_used_this_month: int
    period_start: date
    period_end: date

    @property
    def quota_exceeded(self) -> bool:
        return self.messages_used_this_month >= self.monthly_message_quota


@dataclass(frozen=True, slots=True)
class UsageDayView:
    date: date
    category: str
    direction: str
    count: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    days: list[UsageDayView]
    limits: PlanLimitsView
    totals_by_category: dict[str, int] = field(default_factory=dict)


def _moment(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return fallback


def _category(*candidates: object) -> str:
    """The first candidate naming one of the four categories (Meta's variants such as `marketing_lite` or
    `authentication_international` count in theirs), else `service`."""
    for raw in candidates:
        wanted = raw.strip().lower() if isinstance(raw, str) else ""
        for name in (wanted, wanted.split("_", 1)[0]):
            if name in CATEGORIES:
                return name
    return DEFAULT_CATEGORY


def counted_message(event: EventEnvelope) -> CountedMessage | None:
    """What one messaging event adds to the usage, or None when it adds nothing."""
    if event.type == MESSAGE_RECEIVED:
        direction, category = INBOUND, DEFAULT_CATEGORY
    elif event.type == MESSAGE_CREATED:
        if event.data.get("source") == SOURCE_BUSINESS_APP:
            return None
        direction, category = OUTBOUND, _category(event.data.get("category"))
    else:
        return None
    return CountedMessage(direction=direction, category=category,
                          at=_moment(event.data.get("createdAt"), event.occurred_at))


def delivered_message(event: EventEnvelope) -> DeliveredMessage | None:
    """The outbound message a `message.status_changed` to DELIVERED or READ reports, or None."""
    data = event.data
    if event.type != MESSAGE_STATUS_CHANGED or data.get("direction") != OUTBOUND:
        return None
    status = data.get("status")
    message_id = data.get("id")
    if status not in DELIVERED_STATUSES or not isinstance(message_id, str) or not message_id:
        return None
    at = _moment(data.get("updatedAt"), event.occurred_at)
    history = data.get("statusHistory")
    for change in reversed(history if isinstance(history, list) else []):
        if isinstance(change, dict) and change.get("status") == status:
            at = _moment(change.get("at"), at)
            break
    return DeliveredMessage(message_id=message_id, category=_category(data.get("category"),
                                                                      data.get("pricingCategory")), at=at)


def zone(timezone: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(zone(timezone)).date()


def month_of(day: date) -> tuple[date, date]:
    """The first and last day of `day`'s month."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def _date(value: str, field_name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgument(f"{field_name} must be a date, YYYY-MM-DD", code="INVALID_DATE") from None


def date_range(*, from_date: str, to_date: str, today: date) -> tuple[date, date]:
    """Inclusive bounds. Neither given: the current month. Only `from_date`: up to the current month's end. Only
    `to_date`: from the first day of its month."""
    end = _date(to_date, "to_date") if to_date.strip() else month_of(today)[1]
    start = _date(from_date, "from_date") if from_date.strip() else month_of(end)[0]
    if end < start:
        raise InvalidArgument("to_date is before from_date", code="INVALID_DATE_RANGE")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidArgument(f"a usage report covers at most {MAX_RANGE_DAYS} days", code="INVALID_DATE_RANGE")
    return start, end
