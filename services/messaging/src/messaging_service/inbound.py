"""The inbound use case: one verified webhook delivery from Meta → stored messages (once per tenant and wamid),
their `message.received` events, the statuses it reports, and the delivery's outcome for webhook-ingest."""

from __future__ import annotations

import enum
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from eva_common.db import SessionFactory, transaction
from eva_common.errors import InvalidArgument
from eva_common.outbox import enqueue
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, SOURCE_BUSINESS_APP, ContactSnapshot
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookProcessed, WebhookReceived

from messaging_service import media_state, message_store, statuses
from messaging_service.callback import message_id_of_callback
from messaging_service.events import webhook_processed_event
from messaging_service.metrics import WEBHOOK_ITEMS
from messaging_service.models import INBOUND, OUTBOUND, Message, ParkedStatus
from messaging_service.repository import MessageRepository
from messaging_service.webhook import EchoMessage, InboundMessage, Sender, StatusUpdate, TemplateUpdate, walk

logger = logging.getLogger(__name__)

OUTCOME_PROCESSED = "processed"


@dataclass(frozen=True, slots=True)
class ResolvedSender:
    """The contact and conversation the conversation service resolved for an inbound message."""

    conversation_id: uuid.UUID
    contact: ContactSnapshot


class ContactResolver(Protocol):
    async def resolve_inbound_contact(
        self, *, tenant_id: str, sender: Sender, message_at: datetime, phone_number_id: str | None,
        echo: bool = False,
    ) -> ResolvedSender: ...


class TemplateUpdates(Protocol):
    """Meta's template webhooks applied to the stored templates (template_sync.TemplateWebhooks): one Outcome value
    per update."""

    async def apply(self, tenant_id: str, updates: Sequence[TemplateUpdate]) -> list[str]: ...


class Outcome(enum.StrEnum):
    STORED = "stored"  # a new message, announced
    DUPLICATE = "duplicate"  # already stored: nothing new
    SKIPPED = "skipped"  # not storable (no sender id)
    STATUS_APPLIED = "status_applied"  # the message moved forward
    STATUS_RECORDED = "status_recorded"  # history only (older, repeated or untracked status)
    STATUS_PARKED = "status_parked"  # its message is not stored (yet)
    ERROR_REPORTED = "error_reported"  # value.errors[] from Meta
    ECHO_STORED = "echo_stored"  # a coexistence echo, stored as an outbound message and announced
    ECHO_DUPLICATE = "echo_duplicate"
    ECHO_SKIPPED = "echo_skipped"  # no recipient id
    TEMPLATE_UPDATED = "template_updated"  # a stored template changed, announced
    TEMPLATE_UNCHANGED = "template_unchanged"
    TEMPLATE_UNKNOWN = "template_unknown"  # not stored here: the tenant's templates were synced instead


class WebhookProcessor:
    def __init__(
        self, *, sessions: SessionFactory, resolver: ContactResolver, events_topic: str, outcomes_topic: str,
        templates: TemplateUpdates | None = None,
    ) -> None:
        self._templates = templates
        self._sessions = sessions
        self._resolver = resolver
        self._events_topic = events_topic
        self._outcomes_topic = outcomes_topic

    async def process(self, envelope: EventEnvelope) -> WebhookProcessed | None:
        """Handles every message, status and error of one delivery, then records its outcome. Safe to repeat:
        a redelivered (or concurrently processed) delivery stores and announces nothing twice."""
        if envelope.type != WEBHOOK_RECEIVED:
            logger.info("ignoring an event of another type", extra={"event_type": envelope.type})
            return None
        tenant_id = envelope.tenant_id
        if not tenant_id:
            raise InvalidArgument("a webhook delivery without its tenant", code="TENANT_REQUIRED")
        delivery = WebhookReceived.model_validate(envelope.data)
        batch = walk(delivery.payload)
        tally: Counter[Outcome] = Counter()
        for message in batch.messages:
            tally[await self.receive_message(tenant_id, message, delivery=delivery)] += 1
        for echo in batch.echoes:
            tally[await self.receive_echo(tenant_id, echo, delivery=delivery)] += 1
        for status in batch.statuses:
            tally[await self.apply_status(tenant_id, status)] += 1
        for error in batch.errors:
            tally[Outcome.ERROR_REPORTED] += 1
            logger.warning("Meta reported an error", extra={
                "delivery_id": delivery.delivery_id, "code": error.code, "title": error.title,
                "details": error.details, "phone_number_id": error.phone_number_id})
        if batch.templates and self._templates is not None:
            for template_outcome in await self._templates.apply(tenant_id, batch.templates):
                tally[Outcome(template_outcome)] += 1
        for item_outcome, count in tally.items():
            WEBHOOK_ITEMS.labels(item_outcome.value).inc(count)
        detail = " ".join(f"{outcome.value}={count}" for outcome, count in sorted(tally.items()))
        if batch.ignored:
            detail = f"{detail} ignored={batch.ignored}".strip()
        outcome = WebhookProcessed(
            delivery_id=delivery.delivery_id,
            outcome=OUTCOME_PROCESSED,
            messages=len(batch.messages),
            statuses=len(batch.statuses),
            detail=detail or None,
        )
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await enqueue(session, topic=self._outcomes_topic, key=delivery.delivery_id,
                          event=webhook_processed_event(tenant_id, outcome))
        logger.info("webhook delivery processed", extra={"delivery_id": delivery.delivery_id, "detail": detail})
        return outcome

    async def receive_message(self, tenant_id: str, inbound: InboundMessage, *, delivery: WebhookReceived) -> Outcome:
        """Stores an inbound message once per (tenant, wamid) and, in the same transaction, its `message.received`."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            if await MessageRepository(session).wamid_exists(tenant_id=tenant_id, wamid=inbound.wamid):
                return Outcome.DUPLICATE
        if not inbound.sender.wa_id and not inbound.sender.user_id:
            logger.warning("inbound message without a sender id; skipped", extra={"wamid": inbound.wamid})
            return Outcome.SKIPPED
        sent_at = inbound.sent_at or delivery.received_at
        phone_number_id = inbound.phone_number_id or delivery.phone_number_id or None
        resolved = await self._resolver.resolve_inbound_contact(
            tenant_id=tenant_id, sender=inbound.sender, message_at=sent_at, phone_number_id=phone_number_id
        )
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            stored = await message_store.store_message(
                session,
                Message(
                    tenant_id=tenant_id,
                    conversation_id=resolved.conversation_id,
                    contact_id=uuid.UUID(resolved.contact.id),
                    wamid=inbound.wamid,
                    direction=INBOUND,
                    type=inbound.type,
                    status=statuses.RECEIVED,
                    content=inbound.content,
                    context=inbound.context,
                    referral=inbound.referral,
                    error=inbound.errors,
                    raw=inbound.raw,
                    phone_number_id=phone_number_id,
                    sent_at=sent_at,
                    media=media_state.initial(inbound.type, inbound.content),
                ),
                event_type=MESSAGE_RECEIVED,
                events_topic=self._events_topic,
                contact=resolved.contact,
            )
            if stored is None:  # a concurrent copy of this delivery stored it first
                return Outcome.DUPLICATE
        return Outcome.STORED

    async def receive_echo(self, tenant_id: str, echo: EchoMessage, *, delivery: WebhookReceived) -> Outcome:
        """Stores a coexistence echo (a message the business sent from the WhatsApp Business app; reference §12) once
        per (tenant, wamid): an OUTBOUND message from the business app, SENT, announced as `message.created`. Its
        contact and conversation are resolved with `echo=True`: found or opened, the service window left alone."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            if await MessageRepository(session).wamid_exists(tenant_id=tenant_id, wamid=echo.wamid):
                return Outcome.ECHO_DUPLICATE
        if not echo.to and not echo.to_user_id:
            logger.warning("echo without a recipient id; skipped", extra={"wamid": echo.wamid})
            return Outcome.ECHO_SKIPPED
        sent_at = echo.sent_at or delivery.received_at
        phone_number_id = echo.phone_number_id or delivery.phone_number_id or None
        resolved = await self._resolver.resolve_inbound_contact(
            tenant_id=tenant_id, sender=Sender(wa_id=echo.to, user_id=echo.to_user_id, profile_name=None),
            message_at=sent_at, phone_number_id=phone_number_id, echo=True)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            stored = await message_store.store_message(
                session,
                Message(
                    tenant_id=tenant_id, conversation_id=resolved.conversation_id,
                    contact_id=uuid.UUID(resolved.contact.id), wamid=echo.wamid, direction=OUTBOUND,
                    type=echo.type, status=statuses.SENT, content=echo.content, raw=echo.raw,
                    phone_number_id=phone_number_id, sent_at=sent_at, source=SOURCE_BUSINESS_APP,
                    sender={"kind": SOURCE_BUSINESS_APP}, media=media_state.initial(echo.type, echo.content),
                ),
                event_type=MESSAGE_CREATED,
                events_topic=self._events_topic,
                contact=resolved.contact,
            )
        return Outcome.ECHO_DUPLICATE if stored is None else Outcome.ECHO_STORED

    async def apply_status(self, tenant_id: str, update: StatusUpdate) -> Outcome:
        """Records a status in its message's history and moves the message forward; parks it when the message
        is not stored."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = MessageRepository(session)
            await repository.lock_wamid(tenant_id=tenant_id, wamid=update.wamid)
            message = await repository.message_by_wamid(tenant_id=tenant_id, wamid=update.wamid)
            if message is None:
                message = await _sent_without_answer(repository, tenant_id, update)
            if message is None:
                await repository.park_status(ParkedStatus(
                    tenant_id=tenant_id, wamid=update.wamid, status=update.status, occurred_at=update.occurred_at,
                    recipient_id=update.recipient_id, phone_number_id=update.phone_number_id, errors=update.errors,
                    payload=update.raw))
                return Outcome.STATUS_PARKED
            moved = await message_store.apply_status(session, message, update, events_topic=self._events_topic)
            if moved is None:
                return Outcome.STATUS_RECORDED
        return Outcome.STATUS_APPLIED


async def _sent_without_answer(repository: MessageRepository, tenant_id: str, update: StatusUpdate) -> Message | None:
    """The outbound message a status names in its `biz_opaque_callback_data` when the sender never recorded the send's
    answer (it died, or the call timed out): the status gives the message its wamid, so it is not sent again."""
    message_id = message_id_of_callback(update.raw.get("biz_opaque_callback_data"))
    if message_id is None:
        return None
    message = await repository.message(tenant_id=tenant_id, message_id=message_id)
    if message is None or message.direction != OUTBOUND or message.wamid:
        return None  # not ours, or already answered (a later send of it has its own wamid)
    moved = await repository.set_wamid(tenant_id=tenant_id, message_id=message.id, wamid=update.wamid)
    if moved is not None:
        logger.info("a send without a recorded answer recognised by its status",
                    extra={"message_id": str(message.id), "wamid": update.wamid})
    return moved
