"""Use cases of the outbound webhooks, transport-free (the gRPC servicer and the gateway's `/api/webhooks` routes map
to these): subscriptions (create, list, get, update, delete) and the delivery log (list, redeliver one, redeliver a
time range). Callers are a tenant's admins (users; services and API keys are refused). Every change leaves an audit
entry in the same transaction. A subscription's secret is returned once, at creation, and never again; no view,
log, event or audit entry carries it.
"""

from __future__ import annotations

import logging
import secrets as random_secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.crypto import SecretBox
from eva_common.db import SessionFactory, driver, transaction
from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from eva_common.identity import ADMIN_ROLES
from eva_common.ids import parse_id
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.envelope import CamelModel
from eva_events.times import Instant
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from n8n_service.events import PUBLIC_TYPES
from n8n_service.models import (
    ACTIVE,
    DELIVERY_STATES,
    PAUSED,
    SUBSCRIPTION_STATES,
    WebhookDelivery,
    WebhookSubscription,
)
from n8n_service.sealing import secret_field
from n8n_service.ssrf import Resolver, UrlPolicy, check_url, redacted, system_resolver

logger = logging.getLogger(__name__)

WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
DELIVERY_NOT_FOUND = "WEBHOOK_DELIVERY_NOT_FOUND"
EVENTS_INVALID = "WEBHOOK_EVENTS_INVALID"
SECRET_INVALID = "WEBHOOK_SECRET_INVALID"  # noqa: S105 - an error code
STATE_INVALID = "WEBHOOK_STATE_INVALID"
LIMIT_REACHED = "WEBHOOK_LIMIT_REACHED"
TIME_RANGE_INVALID = "WEBHOOK_TIME_RANGE_INVALID"
DELIVERY_PENDING = "WEBHOOK_DELIVERY_PENDING"

MAX_SUBSCRIPTIONS = 20
MIN_SECRET_LENGTH, MAX_SECRET_LENGTH = 16, 256
GENERATED_SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of generated secrets
DELIVERIES_CURSOR = "webhook-deliveries"


class SubscriptionView(CamelModel):
    """A subscription as the API shows it (never its secret)."""

    id: str
    tenant_id: str
    url: str
    events: list[str]
    state: str
    paused_reason: str | None
    consecutive_failures: int
    created_at: Instant
    updated_at: Instant
    created_by: str | None


class CreatedSubscription(CamelModel):
    subscription: SubscriptionView
    secret: str  # shown this once


class DeliveryView(CamelModel):
    """A delivery of the log: its state, attempts and the last attempt's outcome, and the envelope it sends."""

    id: str
    tenant_id: str
    subscription_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: Instant | None
    expires_at: Instant
    last_error: str | None
    last_status_code: int | None
    last_latency_ms: int | None
    created_at: Instant
    delivered_at: Instant | None
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[DeliveryView]
    next_cursor: str | None


def subscription_view(row: WebhookSubscription) -> SubscriptionView:
    return SubscriptionView(id=str(row.id), tenant_id=row.tenant_id, url=row.url, events=list(row.events),
                            state=row.state, paused_reason=row.paused_reason,
                            consecutive_failures=row.consecutive_failures, created_at=row.created_at,
                            updated_at=row.updated_at, created_by=row.created_by)


def delivery_view(row: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=str(row.id), tenant_id=row.tenant_id, subscription_id=str(row.subscription_id), event_id=row.event_id,
        event_type=row.event_type, state=row.state, attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        expires_at=row.expires_at, last_error=row.last_error, last_status_code=row.last_status_code,
        last_latency_ms=row.last_latency_ms, created_at=row.created_at, delivered_at=row.delivered_at,
        envelope=row.envelope)


def tenant_admin(principal: Principal) -> str:
    """A tenant's admin (a user): returns the tenant."""
    if principal.is_service:
        raise PermissionDenied("only a user may manage webhooks", code="USER_ONLY")
    if principal.is_api_key:
        raise PermissionDenied("an API key may not manage webhooks", code="API_KEY_NOT_ALLOWED")
    principal.require_role(*ADMIN_ROLES)
    return principal.require_tenant()


def valid_events(events: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [event for event in chosen if event not in PUBLIC_TYPES]
    if not chosen or unknown:
        raise InvalidArgument(f"events must be a non-empty list of {', '.join(PUBLIC_TYPES)}", code=EVENTS_INVALID,
                              extra={"unknown": unknown} if unknown else None)
    return chosen


def valid_secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return SECRET_PREFIX + random_secrets.token_urlsafe(GENERATED_SECRET_BYTES)
    well_formed = secret.isprintable() and secret == secret.strip()
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not well_formed:
        raise InvalidArgument(f"a secret has {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable characters",
                              code=SECRET_INVALID)
    return secret


def _not_found() -> NotFound:
    return NotFound("webhook subscription not found", code=WEBHOOK_NOT_FOUND)


def _time_range(since: datetime | None, until: datetime | None) -> None:
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidArgument("times need a UTC offset", code=TIME_RANGE_INVALID)
    if since is not None and until is not None and since >= until:
        raise InvalidArgument("the range must end after it starts", code=TIME_RANGE_INVALID)


class WebhookService:
    def __init__(self, *, sessions: SessionFactory, secrets: SecretBox, policy: UrlPolicy, audit: AuditRecorder,
                 max_age_seconds: float, resolver: Resolver = system_resolver) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._policy = policy
        self._audit = audit
        self._max_age = max_age_seconds
        self._resolver = resolver

    async def _checked_url(self, url: str) -> str:
        return (await check_url(url, self._policy, self._resolver)).url

    # --- subscriptions -------------------------------------------------------------------------------------------
    async def create_subscription(self, *, actor: Actor, url: str, events: Sequence[str],
                                  secret: str | None = None) -> CreatedSubscription:
        tenant = tenant_admin(actor.principal)
        chosen, secret = valid_events(events), valid_secret(secret)
        checked = await self._checked_url(url)
        subscription_id = uuid.uuid4()
        now = datetime.now(UTC)
        row = WebhookSubscription(
            id=subscription_id, tenant_id=tenant, url=checked, events=chosen, state=ACTIVE,
            secret=self._secrets.encrypt(secret, tenant_id=tenant, field=secret_field(subscription_id)),
            created_at=now, updated_at=now, created_by=actor.principal.subject)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            # one creation per tenant at a time, so concurrent ones cannot pass the limit together
            await (await driver(session)).execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"webhooks:{tenant}")
            count = (await session.exec(select(sa.func.count()).select_from(WebhookSubscription)
                                        .where(WebhookSubscription.tenant_id == tenant))).one()
            if count >= MAX_SUBSCRIPTIONS:
                raise FailedPrecondition(f"a tenant has at most {MAX_SUBSCRIPTIONS} webhook subscriptions",
                                         code=LIMIT_REACHED)
            session.add(row)
            await session.flush()
            await self._audit.record(session, tenant_id=tenant, actor=actor, action="webhook.subscription_created",
                                     target_type="webhook_subscription", target_id=str(subscription_id),
                                     details={"url": redacted(checked), "events": chosen})
        logger.info("webhook subscription created", extra={"tenant_id": tenant, "subscription_id": str(subscription_id),
                                                           "events": chosen})
        return CreatedSubscription(subscription=subscription_view(row), secret=secret)

    async def list_subscriptions(self, *, principal: Principal) -> list[SubscriptionView]:
        tenant = tenant_admin(principal)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            rows = (await session.exec(select(WebhookSubscription).where(WebhookSubscription.tenant_id == tenant)
                                       .order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id))
                                       )).all()
        return [subscription_view(row) for row in rows]

    async def get_subscription(self, *, principal: Principal, subscription_id: str) -> SubscriptionView:
        tenant = tenant_admin(principal)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            return subscription_view(await self._subscription(session, tenant, subscription_id))

    async def update_subscription(self, *, actor: Actor, subscription_id: str, url: str | None = None,
                                  events: Sequence[str] | None = None, state: str | None = None) -> SubscriptionView:
        """Changes the URL, the events or the state; resuming a paused subscription (`state: active`) clears its
        failures and reason, and its queued deliveries become due again."""
        tenant = tenant_admin(actor.principal)
        if state is not None and state not in SUBSCRIPTION_STATES:
            raise InvalidArgument(f"state is one of {', '.join(SUBSCRIPTION_STATES)}", code=STATE_INVALID)
        chosen = valid_events(events) if events is not None else None
        checked = await self._checked_url(url) if url is not None else None
        changes: dict[str, Any] = {}
        async with transaction(self._sessions, tenant_id=tenant) as session:
            row = await self._subscription(session, tenant, subscription_id, lock=True)
            if checked is not None and checked != row.url:
                row.url = changes["url"] = checked
            if chosen is not None and chosen != list(row.events):
                row.events = changes["events"] = chosen
            if state is not None and state != row.state:
                row.state = changes["state"] = state
                if state == ACTIVE:
                    row.consecutive_failures, row.failing_since, row.paused_reason = 0, None, None
                else:
                    row.paused_reason = f"paused by {actor.principal.subject}"
            if changes:
                row.updated_at = datetime.now(UTC)
                session.add(row)
                await session.flush()
                details = {**changes, "url": redacted(changes["url"])} if "url" in changes else changes
                await self._audit.record(session, tenant_id=tenant, actor=actor, action="webhook.subscription_updated",
                                         target_type="webhook_subscription", target_id=str(row.id), details=details)
                logger.info("webhook subscription updated", extra={
                    "tenant_id": tenant, "subscription_id": str(row.id), "changed": sorted(changes)})
            return subscription_view(row)

    async def delete_subscription(self, *, actor: Actor, subscription_id: str) -> None:
        """Deletes the subscription and its delivery log (pending deliveries are never attempted)."""
        tenant = tenant_admin(actor.principal)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            row = await self._subscription(session, tenant, subscription_id, lock=True)
            await session.delete(row)
            await self._audit.record(session, tenant_id=tenant, actor=actor, action="webhook.subscription_deleted",
                                     target_type="webhook_subscription", target_id=str(row.id),
                                     details={"url": redacted(row.url)})
        logger.info("webhook subscription deleted", extra={"tenant_id": tenant, "subscription_id": subscription_id})

    async def _subscription(self, session: AsyncSession, tenant: str, subscription_id: str, *,
                            lock: bool = False) -> WebhookSubscription:
        parsed = parse_id(subscription_id)
        if parsed is None:
            raise _not_found()
        statement = select(WebhookSubscription).where(WebhookSubscription.tenant_id == tenant,
                                                      WebhookSubscription.id == parsed)
        if lock:
            statement = statement.with_for_update()
        row = (await session.exec(statement)).first()
        if row is None:
            raise _not_found()
        return row

    # --- the delivery log ----------------------------------------------------------------------------------------
    async def list_deliveries(
        self, *, principal: Principal, subscription_id: str | None = None, state: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 0, cursor: str = "",
    ) -> DeliveryPage:
        """The tenant's deliveries, newest first, filtered by subscription, state and creation time
        (`since` <= created_at < `until`); keyset pages (eva_common.paging)."""
        tenant = tenant_admin(principal)
        size = page_size(limit)
        position = decode_cursor(cursor, kind=DELIVERIES_CURSOR)
        if state is not None and state not in DELIVERY_STATES:
            raise InvalidArgument(f"state is one of {', '.join(DELIVERY_STATES)}", code="VALIDATION_FAILED")
        _time_range(since, until)
        statement = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant)
        if subscription_id is not None:
            parsed = parse_id(subscription_id)
            if parsed is None:
                return DeliveryPage(items=[], next_cursor=None)
            statement = statement.where(WebhookDelivery.subscription_id == parsed)
        if state is not None:
            statement = statement.where(WebhookDelivery.state == state)
        if since is not None:
            statement = statement.where(col(WebhookDelivery.created_at) >= since)
        if until is not None:
            statement = statement.where(col(WebhookDelivery.created_at) < until)
        if position is not None:
            try:
                after = int(position.id)
            except ValueError:
                raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from None
            statement = statement.where(col(WebhookDelivery.id) < after)
        statement = statement.order_by(col(WebhookDelivery.id).desc()).limit(size + 1)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            rows = list((await session.exec(statement)).all())
        more = len(rows) > size
        rows = rows[:size]
        next_cursor = encode_cursor(Position(kind=DELIVERIES_CURSOR, id=str(rows[-1].id))) if more and rows else None
        return DeliveryPage(items=[delivery_view(row) for row in rows], next_cursor=next_cursor)

    async def get_delivery(self, *, principal: Principal, delivery_id: str) -> DeliveryView:
        tenant = tenant_admin(principal)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            return delivery_view(await self._delivery(session, tenant, delivery_id))

    async def redeliver(self, *, actor: Actor, delivery_id: str) -> DeliveryView:
        """Puts a delivered or dead delivery back in its line (pending, due now, a new expiry; its attempts are
        kept). It keeps its place: newer deliveries of its conversation wait for it. A pending one is refused."""
        tenant = tenant_admin(actor.principal)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            row = await self._delivery(session, tenant, delivery_id, lock=True)
            if row.state == "pending":
                raise FailedPrecondition("the delivery is still pending", code=DELIVERY_PENDING)
            connection = await driver(session)
            await connection.execute(
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), "
                "expires_at = now() + make_interval(secs => $2), delivered_at = NULL, updated_at = now() "
                "WHERE id = $1", row.id, self._max_age)
            await self._audit.record(session, tenant_id=tenant, actor=actor, action="webhook.delivery_redelivered",
                                     target_type="webhook_delivery", target_id=str(row.id),
                                     details={"subscriptionId": str(row.subscription_id), "eventId": row.event_id})
            await session.refresh(row)
        logger.info("webhook delivery redelivered", extra={"tenant_id": tenant, "delivery_id": row.id})
        return delivery_view(row)

    async def redeliver_range(self, *, actor: Actor, subscription_id: str, since: datetime,
                              until: datetime) -> int:
        """Redelivers every delivered or dead delivery of a subscription created in [since, until); the number."""
        tenant = tenant_admin(actor.principal)
        _time_range(since, until)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            row = await self._subscription(session, tenant, subscription_id)
            connection = await driver(session)
            count = await connection.fetchval(
                "WITH again AS (UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), "
                "expires_at = now() + make_interval(secs => $4), delivered_at = NULL, updated_at = now() "
                "WHERE tenant_id = $1 AND subscription_id = $2 AND state <> 'pending' "
                "AND created_at >= $3 AND created_at < $5 RETURNING 1) SELECT count(*) FROM again",
                tenant, row.id, since, self._max_age, until)
            await self._audit.record(session, tenant_id=tenant, actor=actor, action="webhook.deliveries_redelivered",
                                     target_type="webhook_subscription", target_id=str(row.id),
                                     details={"since": since.isoformat(), "until": until.isoformat(),
                                              "deliveries": int(count)})
        logger.info("webhook deliveries redelivered", extra={"tenant_id": tenant, "subscription_id": str(row.id),
                                                             "deliveries": int(count)})
        return int(count)

    async def _delivery(self, session: AsyncSession, tenant: str, delivery_id: str, *,
                        lock: bool = False) -> WebhookDelivery:
        try:
            parsed = int(delivery_id)
        except (TypeError, ValueError):
            raise NotFound("webhook delivery not found", code=DELIVERY_NOT_FOUND) from None
        statement = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant, WebhookDelivery.id == parsed)
        if lock:
            statement = statement.with_for_update()
        row = (await session.exec(statement)).first()
        if row is None:
            raise NotFound("webhook delivery not found", code=DELIVERY_NOT_FOUND)
        return row


__all__ = ["PAUSED", "CreatedSubscription", "DeliveryPage", "DeliveryView", "SubscriptionView", "WebhookService"]
