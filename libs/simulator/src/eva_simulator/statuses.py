"""Status webhooks for messages the business sent: plan them, then emit them in the background.

:func:`plan_statuses` decides *what* Meta would report (``sent`` → ``delivered`` → ``read`` by default,
only ``sent`` for reactions, one ``failed`` when the accepted send fails afterwards — 131047 outside the
customer-service window when enforcement is ``async``, 131053 for media of the wrong kind — and what a
per-send :class:`StatusRule` asks for: another sequence, a failure after ``sent``, skipped, duplicated or
reordered statuses); :class:`StatusEmitter` sends the plan after the configured delays.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eva_simulator import payloads
from eva_simulator.payloads import JsonObject
from eva_simulator.signing import meta_body
from eva_simulator.state import AsyncFailure, BusinessNumber, RuntimeConfig, SentMessage, StatusRecord, StatusRule
from eva_simulator.webhooks import WebhookSender

logger = logging.getLogger("eva_simulator.statuses")

CONVERSATION_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class PlannedStatus:
    """One status webhook to emit ``delay`` seconds after the previous one, ``copies`` times."""

    status: str
    delay: float
    error: AsyncFailure | None = None
    copies: int = 1


def plan_statuses(
    *, message: SentMessage, config: RuntimeConfig, rule: StatusRule | None = None
) -> list[PlannedStatus]:
    """What Meta would report for ``message`` under ``config`` and an optional per-send ``rule``."""
    delays = config.status_delays or [0.0]

    def delay_at(index: int) -> float:
        return delays[min(index, len(delays) - 1)]

    if message.async_failure is not None:
        return [PlannedStatus(status="failed", delay=delay_at(0), error=message.async_failure)]
    if message.type == "reaction":  # reference §5.1: reactions only ever get `sent`
        return [PlannedStatus(status="sent", delay=delay_at(0))]
    sequence = list(config.status_sequence)
    error: AsyncFailure | None = None
    if rule is not None:
        if rule.sequence is not None:
            sequence = list(rule.sequence)
        if rule.fail_with is not None:
            sequence, error = ["sent", "failed"], rule.fail_with
        sequence = [name for name in sequence if name not in rule.skip]
        if rule.reorder:
            sequence.reverse()
    copies = 2 if rule is not None and rule.duplicate else 1
    return [
        PlannedStatus(
            status=name,
            delay=delay_at(index),
            error=(error or AsyncFailure(code=131000)) if name == "failed" else None,
            copies=copies,
        )
        for index, name in enumerate(sequence)
    ]


def pricing_of(message: SentMessage) -> tuple[str, bool, str]:
    """(category, billable, type): templates are billed in their category (``regular``), free-form messages
    are free service inside the window (reference §8, §12)."""
    if message.type == "template":
        return (message.template_category or "MARKETING").lower(), True, "regular"
    return "service", False, "free_customer_service"


def build_status(
    message: SentMessage, planned: PlannedStatus, *, conversation_id: str, with_pricing: bool, now: float
) -> JsonObject:
    """The ``statuses[]`` element for one planned status (v21 shape: ``conversation`` + ``pricing`` on
    ``sent`` and on the first of ``delivered``/``read``)."""
    biz_data = message.request.get("biz_opaque_callback_data")
    opaque = biz_data if isinstance(biz_data, str) else None
    recipient_id, recipient_user_id = message.wa_id or None, message.user_id
    if planned.status == "failed":
        error = planned.error or AsyncFailure(code=131000)
        return payloads.failed_status(
            message.wamid,
            code=error.code,
            details=error.details,
            title=error.title,
            timestamp=payloads.unix_timestamp(now),
            biz_opaque_callback_data=opaque,
            recipient_id=recipient_id,
            recipient_user_id=recipient_user_id,
        )
    category, billable, pricing_type = pricing_of(message)
    conversation = pricing = None
    if with_pricing:
        expiration = payloads.unix_timestamp(now + CONVERSATION_SECONDS) if planned.status == "sent" else None
        conversation = payloads.conversation_object(
            conversation_id=conversation_id, origin_type=category, expiration_timestamp=expiration
        )
        pricing = payloads.pricing_object(category=category, billable=billable, type=pricing_type)
    return payloads.status(
        message.wamid,
        planned.status,
        timestamp=payloads.unix_timestamp(now),
        conversation=conversation,
        pricing=pricing,
        biz_opaque_callback_data=opaque,
        recipient_id=recipient_id,
        recipient_user_id=recipient_user_id,
    )


class StatusEmitter:
    """Runs status plans as background tasks; :meth:`aclose` cancels what is still pending."""

    def __init__(self, *, sender: WebhookSender, clock: Callable[[], float] = time.time) -> None:
        self._sender = sender
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(
        self, *, number: BusinessNumber, message: SentMessage, plan: Sequence[PlannedStatus]
    ) -> "asyncio.Task[None] | None":
        if not plan or not number.webhook_url:
            return None
        task = asyncio.create_task(self._run(number, message, list(plan)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def _run(self, number: BusinessNumber, message: SentMessage, plan: list[PlannedStatus]) -> None:
        conversation_id = payloads.new_conversation_id()
        priced_after_sent = False
        for planned in plan:
            await asyncio.sleep(planned.delay)
            with_pricing = planned.status == "sent" or (
                planned.status in ("delivered", "read") and not priced_after_sent
            )
            if planned.status in ("delivered", "read") and with_pricing:
                priced_after_sent = True
            now = self._clock()
            element = build_status(
                message, planned, conversation_id=conversation_id, with_pricing=with_pricing, now=now
            )
            url = number.webhook_url
            if not url:
                return
            body = meta_body(payloads.status_delivery(number, [element]))
            for _ in range(planned.copies):  # a duplicate is the same bytes again, as Meta resends them
                result = await self._sender.deliver(
                    url, body, app_secret=number.app_secret, kind="status", phone_number_id=number.phone_number_id
                )
                message.statuses.append(
                    StatusRecord(
                        status=planned.status,
                        timestamp=element["timestamp"],
                        delivered=result.delivered,
                        delivery_id=result.delivery_id,
                    )
                )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
