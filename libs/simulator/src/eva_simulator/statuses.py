"""Status webhooks for messages the business sent: plan them, then emit them in the background.

:func:`plan_statuses` decides *what* Meta would report (``sent`` → ``delivered`` → ``read`` by default,
only ``sent`` for reactions, a ``failed`` 131047 outside the customer-service window when enforcement is
``async``); :class:`StatusEmitter` sends the plan after the configured delays. Later behaviours
(reordering, duplicates, dropped ``delivered``) belong in the plan.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eva_simulator import payloads
from eva_simulator.payloads import JsonObject
from eva_simulator.state import BusinessNumber, RuntimeConfig, SentMessage, StatusRecord
from eva_simulator.webhooks import WebhookSender

logger = logging.getLogger("eva_simulator.statuses")

CONVERSATION_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class PlannedStatus:
    """One status webhook to emit ``delay`` seconds after the previous one."""

    status: str
    delay: float
    error_code: int | None = None


def plan_statuses(*, message: SentMessage, config: RuntimeConfig) -> list[PlannedStatus]:
    """What Meta would report for ``message`` under ``config``."""
    delays = config.status_delays or [0.0]

    def delay_at(index: int) -> float:
        return delays[min(index, len(delays) - 1)]

    if message.type != "template" and not message.window_open and config.window_enforcement == "async":
        return [PlannedStatus(status="failed", delay=delay_at(0), error_code=131047)]
    sequence = ["sent"] if message.type == "reaction" else config.status_sequence
    return [PlannedStatus(status=name, delay=delay_at(index)) for index, name in enumerate(sequence)]


def _pricing_category(message: SentMessage) -> tuple[str, bool]:
    """(category, billable): templates are billed as marketing, free-form messages as free service."""
    if message.type == "template":
        return "marketing", True
    return "service", False


def build_status(
    message: SentMessage, planned: PlannedStatus, *, conversation_id: str, with_pricing: bool, now: float
) -> JsonObject:
    """The ``statuses[]`` element for one planned status (v21 shape: ``conversation`` + ``pricing`` on
    ``sent`` and on the first of ``delivered``/``read``)."""
    biz_data = message.request.get("biz_opaque_callback_data")
    opaque = biz_data if isinstance(biz_data, str) else None
    if planned.status == "failed":
        return payloads.failed_status(
            message.wamid,
            recipient_id=message.wa_id,
            code=planned.error_code or 131000,
            timestamp=payloads.unix_timestamp(now),
            biz_opaque_callback_data=opaque,
        )
    category, billable = _pricing_category(message)
    conversation = pricing = None
    if with_pricing:
        expiration = payloads.unix_timestamp(now + CONVERSATION_SECONDS) if planned.status == "sent" else None
        conversation = payloads.conversation_object(
            conversation_id=conversation_id, origin_type=category, expiration_timestamp=expiration
        )
        pricing = payloads.pricing_object(category=category, billable=billable)
    return payloads.status(
        message.wamid,
        planned.status,
        recipient_id=message.wa_id,
        timestamp=payloads.unix_timestamp(now),
        conversation=conversation,
        pricing=pricing,
        biz_opaque_callback_data=opaque,
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
            result = await self._sender.deliver_payload(
                url,
                payloads.status_delivery(number, [element]),
                app_secret=number.app_secret,
                kind="status",
                phone_number_id=number.phone_number_id,
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
