"""Usage counting (the `tenant-usage` consumer of messaging.events.v1) and the plan limits and usage reports."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from eva_common.auth import Principal
from eva_common.db import SessionFactory, per_tenant, transaction
from eva_common.errors import Internal, NotFound
from eva_common.identity import SCOPE_USAGE_READ
from eva_common.inbox import claim_events
from eva_events.envelope import EventEnvelope
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant_service import access
from tenant_service.domain import DEFAULT_TIMEZONE
from tenant_service.models import Tenant
from tenant_service.usage.domain import (
    CATEGORIES,
    COUNTED_DIRECTIONS,
    DELIVERED,
    PlanLimitsView,
    UsageDayView,
    UsageReport,
    counted_message,
    date_range,
    delivered_message,
    local_day,
    month_of,
)
from tenant_service.usage.repository import UsageRepository

logger = logging.getLogger("tenant.usage")

DEFAULT_CONSUMER = "tenant-usage"
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UsageService:
    def __init__(self, *, sessions: SessionFactory, consumer: str = DEFAULT_CONSUMER, clock: Clock = _utcnow) -> None:
        self._sessions = sessions
        self._consumer = consumer
        self._clock = clock

    async def apply_message_event(self, *, event: EventEnvelope) -> bool:
        """Counts one messaging event once (the inbox row and the count commit together). False when the event
        counts nothing or was already counted."""
        return await self.apply_message_events([event]) == 1

    async def apply_message_events(self, events: Sequence[EventEnvelope]) -> int:
        """`apply_message_event` for the events of a Kafka fetch: one transaction (each tenant's events under that
        tenant), the counts of the batch added up per (day, category, direction) and written once each. Returns how
        many events counted."""
        counted_events = 0
        async with transaction(self._sessions) as session:  # all or nothing, each tenant's rows under its tenant
            usage = UsageRepository(session)
            named = [event for event in events if event.tenant_id]
            async for tenant_id, group in per_tenant(session, named, lambda event: event.tenant_id):
                increments: Counter[tuple[date, str, str]] = Counter()
                timezone: str | None = None
                relevant = []  # (event, counted, delivered): the events that count something
                for event in group:
                    counted = counted_message(event)
                    delivered = delivered_message(event) if counted is None else None
                    if counted is not None or delivered is not None:
                        relevant.append((event, counted, delivered))
                claims = await claim_events(session, consumer=self._consumer,
                                            event_ids=[event.id for event, _, _ in relevant])
                for event, counted, delivered in relevant:
                    if not claims.first(event.id):
                        continue
                    if timezone is None:
                        timezone = await usage.timezone(tenant_id) or DEFAULT_TIMEZONE
                    if counted is not None:
                        increments[(local_day(counted.at, timezone), counted.category, counted.direction)] += 1
                    elif delivered is not None:
                        day = local_day(delivered.at, timezone)
                        if not await usage.mark_delivered(tenant_id=tenant_id, message_id=delivered.message_id,
                                                          category=delivered.category, day=day):
                            continue  # counted on an earlier status (DELIVERED, then READ)
                        increments[(day, delivered.category, DELIVERED)] += 1
                    counted_events += 1
                for (day, category, direction), by in sorted(increments.items()):
                    await usage.increment(tenant_id=tenant_id, day=day, category=category, direction=direction,
                                          now=self._clock(), by=by)
        return counted_events

    async def get_plan_limits(self, *, principal: Principal, tenant_id: str) -> PlanLimitsView:
        """The tenant's plan, its limits and this month's use: any user of the tenant, an API key with usage:read,
        or a service naming the tenant (auth checks seats with it, messaging the quota)."""
        scope = access.tenant_reader(principal, tenant_id, scope=SCOPE_USAGE_READ)
        async with transaction(self._sessions, tenant_id=scope) as session:
            return await self._limits(UsageRepository(session), await self._tenant(session, scope))

    async def get_usage(self, *, principal: Principal, tenant_id: str, from_date: str, to_date: str) -> UsageReport:
        """Counts per day, category and direction (inbound, outbound, delivered) between two dates of the tenant's
        calendar (default: this month), the totals per category (inbound and outbound) and the plan limits."""
        scope = access.tenant_reader(principal, tenant_id, scope=SCOPE_USAGE_READ)
        async with transaction(self._sessions, tenant_id=scope) as session:
            usage = UsageRepository(session)
            tenant = await self._tenant(session, scope)
            start, end = date_range(from_date=from_date, to_date=to_date, today=self._today(tenant.timezone))
            limits = await self._limits(usage, tenant)
            rows = await usage.days(tenant_id=scope, start=start, end=end)
        days = [UsageDayView(date=row.day, category=row.category, direction=row.direction, count=row.count)
                for row in rows]
        totals = dict.fromkeys(CATEGORIES, 0)
        for day in days:
            if day.direction in COUNTED_DIRECTIONS:  # `delivered` counts outbound messages a second time
                totals[day.category] = totals.get(day.category, 0) + day.count
        return UsageReport(days=days, limits=limits, totals_by_category=totals)

    def _today(self, timezone: str) -> date:
        return local_day(self._clock(), timezone)

    @staticmethod
    async def _tenant(session: AsyncSession, tenant_id: str) -> Tenant:
        tenant = await UsageRepository(session).tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        return tenant

    async def _limits(self, usage: UsageRepository, tenant: Tenant) -> PlanLimitsView:
        plan = await usage.plan(tenant.plan)
        if plan is None:  # the foreign key makes this impossible; say so clearly if it ever happens
            raise Internal(f"the tenant's plan {tenant.plan!r} does not exist", code="PLAN_MISSING")
        first, last = month_of(self._today(tenant.timezone))
        used = await usage.total(tenant_id=tenant.id, start=first, end=last)
        return PlanLimitsView(
            tenant_id=tenant.id, plan=plan.code, monthly_message_quota=plan.monthly_message_quota, seats=plan.seats,
            messages_used_this_month=used, period_start=first, period_end=last,
        )
