"""The delivery worker: leases due deliveries (the head of each subscription's line per ordering key, of active
subscriptions only; `claim_webhook_deliveries`, FOR UPDATE SKIP LOCKED, so any number of replicas share the work),
attempts them concurrently, and records each outcome under its tenant: delivered; or failed and due again after the
retry policy's wait; or dead once past its expiry. A subscription whose attempts keep failing is paused (pause
policy), with an audit entry and a `webhook.subscription_paused` event for the tenant's admins, both through the
outbox in the same transaction.

The lease is the delivery's `next_attempt_at` moved past the attempt's longest time: a worker that dies mid-attempt
leaves the delivery due again when the lease ends (at least once); an outcome is recorded only while the lease is
still the worker's (the lease time it was given is its token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eva_common.audit import AuditRecorder
from eva_common.crypto import SecretBox, SecretUnreadable
from eva_common.db import SessionFactory, driver, transaction
from eva_common.outbox import enqueue
from eva_events.envelope import make_event
from eva_events.integration import WEBHOOK_SUBSCRIPTION_PAUSED, WebhookSubscriptionPaused
from eva_events.times import rfc3339
from sqlmodel.ext.asyncio.session import AsyncSession

from n8n_service.metrics import DELIVERY_ATTEMPTS, PAUSED_SUBSCRIPTIONS, PENDING_DELIVERIES, SUBSCRIPTIONS_PAUSED
from n8n_service.models import DEAD, PAUSED, PENDING
from n8n_service.retry import PausePolicy, RetryPolicy
from n8n_service.sealing import SYSTEM_ACTOR, secret_field
from n8n_service.sender import AttemptOutcome, WebhookSender
from n8n_service.ssrf import redacted

logger = logging.getLogger(__name__)

_CLAIM = "SELECT delivery_id, tenant_id, lease_until FROM claim_webhook_deliveries($1, $2)"
_LOAD = (
    "SELECT d.id, d.subscription_id, d.event_id, d.event_type, d.envelope::text AS body, d.attempts, d.expires_at, "
    "s.url, s.secret FROM webhook_deliveries AS d JOIN webhook_subscriptions AS s ON s.id = d.subscription_id "
    "WHERE d.tenant_id = $1 AND d.id = ANY($2::bigint[])"
)
_DELIVERED = (
    "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = $3, "
    "next_attempt_at = NULL, last_error = NULL, last_status_code = $4, last_latency_ms = $5, updated_at = $3 "
    "WHERE id = $1 AND state = 'pending' AND next_attempt_at = $2 RETURNING attempts"
)
_FAILED = (
    "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, next_attempt_at = $4, last_error = $5, "
    "last_status_code = $6, last_latency_ms = $7, updated_at = $8 "
    "WHERE id = $1 AND state = 'pending' AND next_attempt_at = $2 RETURNING attempts"
)
_SUBSCRIPTION_HEALTHY = (
    "UPDATE webhook_subscriptions SET consecutive_failures = 0, failing_since = NULL "
    "WHERE id = $1 AND state = 'active' AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)"
)
_SUBSCRIPTION_FAILED = (
    "UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1, "
    "failing_since = COALESCE(failing_since, $2) WHERE id = $1 "
    "RETURNING consecutive_failures, failing_since, state, url"
)
_PAUSE = (
    "UPDATE webhook_subscriptions SET state = 'paused', paused_reason = $2, updated_at = $3 "
    "WHERE id = $1 AND state = 'active' RETURNING id"
)
_BACKLOG = "SELECT pending, paused_subscriptions FROM webhook_backlog()"


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: int
    tenant_id: str
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class Due:
    claim: Claim
    subscription_id: uuid.UUID
    event_id: str
    event_type: str
    body: bytes
    attempts: int
    expires_at: datetime
    url: str
    sealed_secret: str


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveryWorker:
    def __init__(
        self, *, sessions: SessionFactory, sender: WebhookSender, secrets: SecretBox, retry: RetryPolicy,
        pause: PausePolicy, audit: AuditRecorder, integration_topic: str, batch_size: int = 50,
        concurrency: int = 20, poll_seconds: float = 1.0, lease_seconds: float = 60.0,
        random_fraction: Callable[[], float] = random.random, clock: Callable[[], datetime] = _now,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._secrets = secrets
        self._retry = retry
        self._pause = pause
        self._audit = audit
        self._topic = integration_topic
        self._batch = batch_size
        self._concurrency = asyncio.Semaphore(concurrency)
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._random = random_fraction
        self._clock = clock
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()

    # --- the worker ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        while not self._stopping.is_set():
            self._woken.clear()
            handled = await self.run_once()
            if handled < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self._poll)

    def wake(self) -> None:
        """New deliveries were queued (and committed) in this process: claim now rather than at the next poll (which
        remains for the other replicas' deliveries and for retries coming due)."""
        self._woken.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._woken.set()

    async def run_once(self) -> int:
        """Leases one batch of due deliveries and attempts them; the number leased."""
        claims = await self.claim()
        if not claims:
            return 0
        by_tenant: dict[str, list[Claim]] = {}
        for claim in claims:
            by_tenant.setdefault(claim.tenant_id, []).append(claim)
        due: list[Due] = []
        for tenant_id, group in by_tenant.items():
            due.extend(await self._load(tenant_id, group))
        await asyncio.gather(*(self._attempt(item) for item in due))
        return len(claims)

    async def claim(self) -> list[Claim]:
        async with transaction(self._sessions) as session:
            rows = await (await driver(session)).fetch(_CLAIM, self._batch, self._lease)
        return [Claim(delivery_id=row["delivery_id"], tenant_id=row["tenant_id"], lease_until=row["lease_until"])
                for row in rows]

    async def _load(self, tenant_id: str, claims: Sequence[Claim]) -> list[Due]:
        by_id = {claim.delivery_id: claim for claim in claims}
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            rows = await (await driver(session)).fetch(_LOAD, tenant_id, list(by_id))
        return [Due(claim=by_id[row["id"]], subscription_id=row["subscription_id"], event_id=row["event_id"],
                    event_type=row["event_type"], body=row["body"].encode(), attempts=row["attempts"],
                    expires_at=row["expires_at"], url=row["url"], sealed_secret=row["secret"]) for row in rows]

    async def _attempt(self, due: Due) -> None:
        async with self._concurrency:
            try:
                secret = self._secrets.decrypt(due.sealed_secret, tenant_id=due.claim.tenant_id,
                                               field=secret_field(due.subscription_id))
            except SecretUnreadable as error:
                outcome = AttemptOutcome(delivered=False, status_code=None, error=error.code, latency_ms=0)
            else:
                outcome = await self._sender.send(url=due.url, secret=secret, body=due.body, event_id=due.event_id,
                                                  event_type=due.event_type, delivery_id=str(due.claim.delivery_id))
            await self._record(due, outcome)

    # --- outcomes ------------------------------------------------------------------------------------------------
    async def _record(self, due: Due, outcome: AttemptOutcome) -> None:
        now = self._clock()
        claim = due.claim
        async with transaction(self._sessions, tenant_id=claim.tenant_id) as session:
            connection = await driver(session)
            if outcome.delivered:
                attempts = await connection.fetchval(_DELIVERED, claim.delivery_id, claim.lease_until, now,
                                                     outcome.status_code, outcome.latency_ms)
                if attempts is not None:
                    await connection.execute(_SUBSCRIPTION_HEALTHY, due.subscription_id)
                result = "delivered"
            else:
                next_at = self._retry.next_attempt(failed_at=now, attempt=due.attempts + 1,
                                                   expires_at=due.expires_at, random_fraction=self._random())
                state = DEAD if next_at is None else PENDING
                attempts = await connection.fetchval(
                    _FAILED, claim.delivery_id, claim.lease_until, state, next_at, outcome.error,
                    outcome.status_code, outcome.latency_ms, now)
                if attempts is not None:
                    await self._count_failure(session, due, outcome, now)
                result = "dead" if state == DEAD else "failed"
        if attempts is None:
            result = "stale"
            logger.warning("webhook delivery outcome not recorded: its lease was lost",
                           extra={"delivery_id": claim.delivery_id, "tenant_id": claim.tenant_id})
        DELIVERY_ATTEMPTS.labels(result).inc()
        log = logger.warning if result == "dead" else logger.info
        log("webhook attempt", extra={
            "delivery_id": claim.delivery_id, "tenant_id": claim.tenant_id, "subscription_id": str(due.subscription_id),
            "event_id": due.event_id, "event_type": due.event_type, "outcome": result, "attempt": due.attempts + 1,
            "status_code": outcome.status_code, "error": outcome.error, "latency_ms": outcome.latency_ms})

    async def _count_failure(self, session: AsyncSession, due: Due, outcome: AttemptOutcome, now: datetime) -> None:
        connection = await driver(session)
        row = await connection.fetchrow(_SUBSCRIPTION_FAILED, due.subscription_id, now)
        if row is None or row["state"] == PAUSED:
            return
        failures, failing_since = row["consecutive_failures"], row["failing_since"]
        if not self._pause.should_pause(consecutive_failures=failures, failing_since=failing_since, now=now):
            return
        reason = (f"{failures} consecutive failed attempts since {rfc3339(failing_since)}; "
                  f"last: {outcome.error or 'failed'}")
        if await connection.fetchval(_PAUSE, due.subscription_id, reason, now) is None:
            return  # paused meanwhile by another attempt
        tenant_id = due.claim.tenant_id
        paused = WebhookSubscriptionPaused(
            subscription_id=str(due.subscription_id), url=redacted(row["url"]), reason=reason,
            consecutive_failures=failures, last_error=outcome.error, last_status_code=outcome.status_code,
            failing_since=failing_since, paused_at=now)
        await enqueue(session, topic=self._topic, key=tenant_id,
                      event=make_event(WEBHOOK_SUBSCRIPTION_PAUSED, tenant_id=tenant_id, data=paused))
        await self._audit.record(session, tenant_id=tenant_id, actor=SYSTEM_ACTOR, action="webhook.subscription_paused",
                                 target_type="webhook_subscription", target_id=str(due.subscription_id),
                                 details={"reason": reason, "consecutiveFailures": failures})
        SUBSCRIPTIONS_PAUSED.inc()
        logger.warning("webhook subscription paused", extra={
            "tenant_id": tenant_id, "subscription_id": str(due.subscription_id), "consecutive_failures": failures})


async def sample_backlog(sessions: SessionFactory) -> tuple[int, int]:
    """Sets the backlog gauges (pending deliveries, paused subscriptions, every tenant) and returns them."""
    async with transaction(sessions) as session:
        row = await (await driver(session)).fetchrow(_BACKLOG)
    pending, paused = int(row["pending"]), int(row["paused_subscriptions"])
    PENDING_DELIVERIES.set(pending)
    PAUSED_SUBSCRIPTIONS.set(paused)
    return pending, paused
