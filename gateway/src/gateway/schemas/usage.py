"""Usage bodies: messages per day, category and direction (delivered outbound messages as direction `delivered`),
the totals, and the plan's limits."""

from __future__ import annotations

from eva.tenant.v1 import tenant_pb2
from pydantic import Field

from gateway.schemas.base import CamelModel, optional


class UsageDayOut(CamelModel):
    date: str = Field(description="YYYY-MM-DD in the tenant's time zone")
    category: str = Field(description="service | utility | marketing | authentication")
    direction: str = Field(description="inbound | outbound | delivered (outbound messages Meta delivered, counted "
                                       "once each in their pricing category on the day of delivery)")
    count: int

    @classmethod
    def from_proto(cls, day: tenant_pb2.UsageDay) -> UsageDayOut:
        return cls(date=day.date, category=day.category, direction=day.direction, count=day.count)


class PlanLimitsOut(CamelModel):
    plan: str
    monthly_message_quota: int
    seats: int
    messages_used_this_month: int
    quota_exceeded: bool = Field(description="Sending is refused (QUOTA_EXCEEDED) until the next period")
    period_start: str | None = Field(description="First day of the month counted (YYYY-MM-DD, tenant's time zone)")
    period_end: str | None = Field(description="Last day of the month counted")

    @classmethod
    def from_proto(cls, limits: tenant_pb2.PlanLimits) -> PlanLimitsOut:
        return cls(plan=limits.plan, monthly_message_quota=limits.monthly_message_quota, seats=limits.seats,
                   messages_used_this_month=limits.messages_used_this_month, quota_exceeded=limits.quota_exceeded,
                   period_start=optional(limits.period_start), period_end=optional(limits.period_end))


class UsageOut(CamelModel):
    days: list[UsageDayOut]
    totals_by_category: dict[str, int] = Field(description="Inbound and outbound messages per category (delivered "
                                                           "ones are the same outbound messages again: not added)")
    limits: PlanLimitsOut

    @classmethod
    def from_proto(cls, usage: tenant_pb2.GetUsageResponse) -> UsageOut:
        return cls(days=[UsageDayOut.from_proto(day) for day in usage.days],
                   totals_by_category=dict(usage.totals_by_category), limits=PlanLimitsOut.from_proto(usage.limits))
