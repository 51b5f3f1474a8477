"""Posting webhooks the way Meta does: signed raw bytes, success only on HTTP 200, retries with backoff.

Meta retries "immediately, then a few more times with decreasing frequency over the next 7 days"; the
exact schedule is unpublished. :class:`RetryPolicy` compresses that into ``initial_delay * factor**n``
seconds between attempts, capped at ``max_delay``, for at most ``max_attempts`` attempts.
Every attempt is recorded in an :class:`AttemptLog` so tests and operators can see the retries.
"""

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from eva_simulator.signing import (
    LEGACY_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    legacy_signature,
    meta_body,
    signature,
)

logger = logging.getLogger("eva_simulator.webhooks")

USER_AGENT = "facebookexternalua"
MAX_PAYLOAD_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """A compressed version of Meta's retry schedule."""

    max_attempts: int = 5
    initial_delay: float = 0.2
    factor: float = 2.0
    max_delay: float = 10.0
    timeout: float = 5.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based); 0 before the first."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_delay, self.initial_delay * self.factor ** (attempt - 2)))


@dataclass(frozen=True)
class WebhookAttempt:
    """One HTTP POST of one delivery."""

    delivery_id: str
    attempt: int
    url: str
    kind: str
    phone_number_id: str | None
    status: int | None
    error: str | None
    at: float
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveryId": self.delivery_id,
            "attempt": self.attempt,
            "url": self.url,
            "kind": self.kind,
            "phoneNumberId": self.phone_number_id,
            "status": self.status,
            "error": self.error,
            "at": self.at,
            "durationMs": round(self.duration_ms, 3),
        }


@dataclass
class DeliveryResult:
    """The outcome of one delivery after all its attempts."""

    delivery_id: str
    url: str
    body: bytes
    attempts: list[WebhookAttempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveryId": self.delivery_id,
            "delivered": self.delivered,
            "attempts": [attempt.to_json() for attempt in self.attempts],
        }


class AttemptLog:
    """A bounded, in-memory record of every webhook attempt."""

    def __init__(self, limit: int = 10_000) -> None:
        self._items: deque[WebhookAttempt] = deque(maxlen=limit)

    def add(self, attempt: WebhookAttempt) -> None:
        self._items.append(attempt)

    def clear(self) -> None:
        self._items.clear()

    def __iter__(self) -> Iterator[WebhookAttempt]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def query(
        self, *, delivery_id: str | None = None, phone_number_id: str | None = None, kind: str | None = None
    ) -> list[WebhookAttempt]:
        return [
            attempt
            for attempt in self._items
            if (delivery_id is None or attempt.delivery_id == delivery_id)
            and (phone_number_id is None or attempt.phone_number_id == phone_number_id)
            and (kind is None or attempt.kind == kind)
        ]


def webhook_headers(body: bytes, app_secret: str | None, *, signature_override: str | None = None) -> dict[str, str]:
    """Meta's delivery headers. ``signature_override`` replaces the computed signature verbatim
    (for forged-signature tests); ``app_secret=None`` with no override sends no signature at all."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if signature_override is not None:
        headers[SIGNATURE_HEADER] = signature_override
    elif app_secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, app_secret)
        headers[LEGACY_SIGNATURE_HEADER] = legacy_signature(body, app_secret)
    return headers


class WebhookSender:
    """Posts deliveries to callback URLs and retries them like Meta.

    ``client`` may be injected (e.g. an ``httpx.AsyncClient`` on an ASGI transport); otherwise the sender
    owns one and closes it in :meth:`aclose`. Redirects are not followed: a 3xx is a failed attempt.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        log: AttemptLog | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.log = log or AttemptLog()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._tasks: set[asyncio.Task[DeliveryResult]] = set()

    async def deliver_payload(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        app_secret: str | None,
        kind: str = "messages",
        phone_number_id: str | None = None,
        signature_override: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> DeliveryResult:
        """Serialize ``payload`` as Meta does (:func:`meta_body`) and :meth:`deliver` it."""
        return await self.deliver(
            url,
            meta_body(payload),
            app_secret=app_secret,
            kind=kind,
            phone_number_id=phone_number_id,
            signature_override=signature_override,
            policy=policy,
        )

    async def deliver(
        self,
        url: str,
        body: bytes,
        *,
        app_secret: str | None,
        kind: str = "messages",
        phone_number_id: str | None = None,
        signature_override: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> DeliveryResult:
        """POST ``body`` until the receiver answers 200 or the policy's attempts run out."""
        if len(body) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"webhook body of {len(body)} bytes exceeds Meta's 3 MB payload limit")
        active = policy or self.policy
        headers = webhook_headers(body, app_secret, signature_override=signature_override)
        result = DeliveryResult(delivery_id=uuid.uuid4().hex, url=url, body=body)
        for number in range(1, max(1, active.max_attempts) + 1):
            delay = active.delay_before(number)
            if delay > 0:
                await asyncio.sleep(delay)
            attempt = await self._post_once(
                result.delivery_id, number, url, body, headers, active.timeout, kind, phone_number_id
            )
            result.attempts.append(attempt)
            if attempt.ok:
                break
        return result

    def deliver_in_background(
        self,
        url: str,
        body: bytes,
        *,
        app_secret: str | None,
        kind: str = "messages",
        phone_number_id: str | None = None,
    ) -> "asyncio.Task[DeliveryResult]":
        """Start :meth:`deliver` as a task that :meth:`aclose` cancels."""
        task = asyncio.create_task(
            self.deliver(url, body, app_secret=app_secret, kind=kind, phone_number_id=phone_number_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _post_once(
        self,
        delivery_id: str,
        number: int,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
        kind: str,
        phone_number_id: str | None,
    ) -> WebhookAttempt:
        at = time.time()
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(url, content=body, headers=dict(headers), timeout=timeout)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempt = WebhookAttempt(
            delivery_id=delivery_id,
            attempt=number,
            url=url,
            kind=kind,
            phone_number_id=phone_number_id,
            status=status,
            error=error,
            at=at,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        self.log.add(attempt)
        logger.log(
            logging.INFO if attempt.ok else logging.WARNING,
            "webhook attempt",
            extra={"fields": {"event": "webhook_attempt", **attempt.to_json()}},
        )
        return attempt

    async def aclose(self) -> None:
        """Cancel background deliveries and close the owned HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of Meta's ``GET`` verification handshake against a callback URL."""

    status: int | None
    body: str
    challenge: str
    error: str | None = None

    @property
    def verified(self) -> bool:
        return self.status == 200 and self.body == self.challenge

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "body": self.body,
            "challenge": self.challenge,
            "verified": self.verified,
            "error": self.error,
        }


async def verify_callback(
    client: httpx.AsyncClient,
    url: str,
    *,
    verify_token: str,
    challenge: str,
    mode: str = "subscribe",
    timeout: float = 5.0,
) -> VerificationResult:
    """Do what the App Dashboard does when a callback URL is saved (reference §1)."""
    params = {"hub.mode": mode, "hub.challenge": challenge, "hub.verify_token": verify_token}
    try:
        response = await client.get(url, params=params, headers={"User-Agent": USER_AGENT}, timeout=timeout)
    except httpx.HTTPError as exc:
        return VerificationResult(status=None, body="", challenge=challenge, error=type(exc).__name__)
    return VerificationResult(status=response.status_code, body=response.text, challenge=challenge)
