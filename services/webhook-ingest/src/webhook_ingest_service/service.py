"""The ingest use cases: Meta's subscription handshake, and accepting a signed delivery.

A delivery is answered 200 only after every tenant's share of it is acknowledged by Kafka (and every share no
tenant owns is stored aside); anything that cannot be verified is refused, stores nothing, and counts against
the sender's IP.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn, Protocol

from eva_common.errors import DomainError, InvalidArgument, PermissionDenied
from eva_common.kafka.publisher import EventPublisher
from eva_common.telemetry import current_traceparent

from webhook_ingest_service.errors import RetryLater, SignatureInvalid, TooManyUnverified
from webhook_ingest_service.metrics import DELIVERIES, HANDSHAKES, KAFKA_ACK_SECONDS, UNROUTED_PARTS, Outcome
from webhook_ingest_service.ratelimit import FailureLimiter
from webhook_ingest_service.records import DeliveryRecord, delivery_record
from webhook_ingest_service.repository import UnroutedDelivery
from webhook_ingest_service.routing import ParsedDelivery, RoutingPlan, TenantPart, parse_delivery, plan_routes
from webhook_ingest_service.signature import SignatureCheck
from webhook_ingest_service.tenants import TenantDirectory, TenantRoute

logger = logging.getLogger(__name__)

SUBSCRIBE_MODE = "subscribe"
_OFFLOAD_BYTES = 256 * 1024  # parse and serialise bigger deliveries off the event loop
_LOOKUP_CONCURRENCY = 16


class UnroutedStore(Protocol):
    async def record_unrouted(self, deliveries: list[UnroutedDelivery]) -> None: ...


@dataclass(frozen=True, slots=True)
class AcceptedDelivery:
    delivery_ids: tuple[str, ...]  # one per tenant share, published to Kafka
    unrouted_ids: tuple[str, ...]  # shares no tenant owns, stored as 'unrouted'


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookIngest:
    def __init__(
        self,
        *,
        tenants: TenantDirectory,
        publisher: EventPublisher,
        unrouted: UnroutedStore,
        limiter: FailureLimiter,
        topic: str,
        platform_app_secret: str | None,
        platform_verify_token: str | None,
        ack_timeout_seconds: float,
        retry_after_seconds: int,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._tenants = tenants
        self._publisher = publisher
        self._unrouted = unrouted
        self._limiter = limiter
        self._topic = topic
        self._platform_app_secret = platform_app_secret or None
        self._platform_verify_token = platform_verify_token or None
        self._ack_timeout = ack_timeout_seconds
        self._retry_after = retry_after_seconds
        self._clock = clock

    # -- GET handshake -------------------------------------------------------------------------------------

    async def verify_subscription(
        self, *, mode: str | None, verify_token: str | None, challenge: str | None, client_ip: str
    ) -> str:
        """The challenge to echo when the verify token is the platform's or a tenant's."""
        if not mode or not verify_token or not challenge:
            HANDSHAKES.labels("incomplete").inc()
            raise InvalidArgument("hub.mode, hub.verify_token and hub.challenge are required",
                                  code="HANDSHAKE_INCOMPLETE")
        if mode == SUBSCRIBE_MODE and await self._is_known_verify_token(verify_token):
            HANDSHAKES.labels("verified").inc()
            return challenge
        try:
            await self._count_unverified(client_ip)
        except TooManyUnverified:
            HANDSHAKES.labels("rate_limited").inc()
            raise
        HANDSHAKES.labels("refused").inc()
        raise PermissionDenied("the verify token or mode is not accepted", code="VERIFY_TOKEN_INVALID")

    async def _is_known_verify_token(self, verify_token: str) -> bool:
        platform = self._platform_verify_token
        if platform is not None and hmac.compare_digest(verify_token.encode(), platform.encode()):
            return True
        try:
            return await self._tenants.check_verify_token(verify_token) is not None
        except Exception as error:
            logger.warning("verify-token check failed", extra={"error": _describe(error)})
            raise RetryLater("cannot check the verify token now", retry_after_seconds=self._retry_after) from error

    # -- POST delivery -------------------------------------------------------------------------------------

    async def accept_delivery(self, *, body: bytes, signature: str | None, client_ip: str) -> AcceptedDelivery:
        check = SignatureCheck(body, signature)
        if not check.well_formed:
            await self._refuse(client_ip, "missing or malformed signature header")
        parsed = await self._parse(body, client_ip)
        routes, waba_routes = await self._resolve(parsed)
        plan = plan_routes(parsed, routes, waba_routes)
        if not self._authentic(plan, check):
            await self._refuse(client_ip, "the signature does not match")
        received_at = self._clock()
        records = await self._build_records(plan.tenants, received_at, len(body))
        unrouted = [
            UnroutedDelivery(
                delivery_id=str(uuid.uuid4()),
                routing_key=part.routing_key,
                received_at=received_at,
                payload=part.payload,
                detail=f"no tenant owns {part.routing_key or 'this account'}",
            )
            for part in plan.unrouted
        ]
        await self._persist(records, unrouted)
        if unrouted:
            UNROUTED_PARTS.inc(len(unrouted))
            logger.warning("delivery parts no tenant owns were kept aside",
                           extra={"delivery_ids": [item.delivery_id for item in unrouted],
                                  "routing_keys": [item.routing_key for item in unrouted]})
        DELIVERIES.labels(Outcome.ACCEPTED if records or not unrouted else Outcome.UNROUTED).inc()
        logger.info("delivery accepted", extra={
            "delivery_ids": [record.delivery_id for record in records],
            "tenant_ids": [record.tenant_id for record in records], "bytes": len(body)})
        return AcceptedDelivery(
            delivery_ids=tuple(record.delivery_id for record in records),
            unrouted_ids=tuple(item.delivery_id for item in unrouted),
        )

    async def _parse(self, body: bytes, client_ip: str) -> ParsedDelivery:
        try:
            if len(body) > _OFFLOAD_BYTES:
                return await asyncio.to_thread(parse_delivery, body)
            return parse_delivery(body)
        except InvalidArgument:
            await self._count_unverified_delivery(client_ip)
            DELIVERIES.labels(Outcome.MALFORMED).inc()
            raise

    async def _resolve(
        self, parsed: ParsedDelivery
    ) -> tuple[dict[str, TenantRoute | None], dict[str, TenantRoute | None]]:
        """The owner of each phone number id, and of each WABA id of the account-level changes."""
        numbers = parsed.phone_number_ids
        wabas = parsed.account_waba_ids
        gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

        async def one(lookup: Callable[[str], Awaitable[TenantRoute | None]], key: str) -> TenantRoute | None:
            async with gate:
                return await lookup(key)

        try:
            found = await asyncio.gather(
                *(one(self._tenants.resolve_phone_number, number) for number in numbers),
                *(one(self._tenants.resolve_waba_id, waba) for waba in wabas),
            )
        except Exception as error:
            DELIVERIES.labels(Outcome.DEPENDENCY_UNAVAILABLE).inc()
            logger.warning("tenant look-up failed", extra={"error": _describe(error)})
            raise RetryLater("cannot resolve the tenant now", retry_after_seconds=self._retry_after) from error
        return (dict(zip(numbers, found[:len(numbers)], strict=True)),
                dict(zip(wabas, found[len(numbers):], strict=True)))

    def _authentic(self, plan: RoutingPlan, check: SignatureCheck) -> bool:
        """Each tenant's share verifies with its own secret (else the platform's); a delivery with no tenant share
        must verify with the platform secret; shares no tenant owns ride on the delivery's verification."""
        if not plan.tenants:
            return self._platform_app_secret is not None and check.verified_with(self._platform_app_secret)
        for part in plan.tenants:
            secret = part.app_secret or self._platform_app_secret
            if secret is None or not check.verified_with(secret):
                return False
        return True

    async def _refuse(self, client_ip: str, reason: str) -> NoReturn:
        logger.info("delivery refused", extra={"reason": reason, "client_ip": client_ip})
        await self._count_unverified_delivery(client_ip)
        DELIVERIES.labels(Outcome.SIGNATURE_INVALID).inc()
        raise SignatureInvalid("the delivery's X-Hub-Signature-256 does not verify")

    async def _count_unverified(self, client_ip: str) -> None:
        """Counts an unverifiable request against its IP; raises TooManyUnverified (429) once over the limit."""
        decision = await self._limiter.hit(client_ip)
        if not decision.allowed:
            raise TooManyUnverified("too many unverifiable requests",
                                    retry_after_seconds=decision.retry_after_seconds)

    async def _count_unverified_delivery(self, client_ip: str) -> None:
        try:
            await self._count_unverified(client_ip)
        except TooManyUnverified:
            DELIVERIES.labels(Outcome.RATE_LIMITED).inc()
            raise

    async def _build_records(self, parts: list[TenantPart], received_at: datetime, size: int) -> list[DeliveryRecord]:
        traceparent = current_traceparent()

        def build() -> list[DeliveryRecord]:
            return [self._record(part, received_at, traceparent) for part in parts]

        return await asyncio.to_thread(build) if size > _OFFLOAD_BYTES else build()

    @staticmethod
    def _record(part: TenantPart, received_at: datetime, traceparent: str | None) -> DeliveryRecord:
        return delivery_record(
            delivery_id=str(uuid.uuid4()),
            tenant_id=part.tenant_id,
            phone_number_id=part.phone_number_id,
            received_at=received_at,
            payload=part.payload,
            traceparent=traceparent,
        )

    async def _persist(self, records: list[DeliveryRecord], unrouted: list[UnroutedDelivery]) -> None:
        """Publishes the tenant shares and stores the unrouted ones, both under the acknowledgement deadline."""
        started = time.perf_counter()

        async def publish_all() -> None:
            await asyncio.gather(*(
                self._publisher.publish(self._topic, key=record.key, value=record.value, headers=record.headers)
                for record in records
            ))
            KAFKA_ACK_SECONDS.observe(time.perf_counter() - started)

        async def store_unrouted() -> None:
            await self._unrouted.record_unrouted(unrouted)

        jobs: list[tuple[Outcome, asyncio.Task[None]]] = []
        if records:
            jobs.append((Outcome.KAFKA_TIMEOUT, asyncio.ensure_future(publish_all())))
        if unrouted:
            jobs.append((Outcome.DEPENDENCY_UNAVAILABLE, asyncio.ensure_future(store_unrouted())))
        if not jobs:
            return
        _, pending = await asyncio.wait([task for _, task in jobs], timeout=self._ack_timeout)
        for task in pending:
            task.cancel()
        failed: Outcome | None = None
        for outcome, task in jobs:
            if task in pending:
                failed = failed or outcome
                logger.warning("delivery not acknowledged in time", extra={"step": outcome.value})
            elif (error := task.exception()) is not None:
                failed = failed or outcome
                # the type only: database errors carry the statement's parameters (the guest's messages)
                logger.error("delivery could not be stored", extra={"step": outcome.value,
                                                                     "error": type(error).__name__})
        if failed is not None:
            DELIVERIES.labels(failed).inc()
            raise RetryLater("the delivery could not be stored durably in time; deliver it again",
                             retry_after_seconds=self._retry_after)


def _describe(error: Exception) -> str:
    return error.code if isinstance(error, DomainError) else type(error).__name__
