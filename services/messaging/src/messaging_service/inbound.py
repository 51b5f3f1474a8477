"""The inbound use case: one verified webhook delivery from Meta → stored messages (once per tenant and wamid),
their `message.received` events, the statuses it reports, and the delivery's outcome for webhook-ingest."""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from eva_common.db import SessionFactory, per_tenant, transaction
from eva_common.errors import InvalidArgument
from eva_common.outbox import enqueue, gathered
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, SOURCE_BUSINESS_APP, ContactSnapshot
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookProcessed, WebhookReceived
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service import media_state, message_store, statuses
from messaging_service.callback import message_id_of_callback
from messaging_service.events import webhook_processed_event
from messaging_service.metrics import WEBHOOK_ITEMS
from messaging_service.models import INBOUND, OUTBOUND, Message, ParkedStatus
from messaging_service.repository import MessageRepository
from messaging_service.webhook import (
    EchoMessage,
    InboundMessage,
    Sender,
    StatusUpdate,
    TemplateUpdate,
    WebhookBatch,
    walk,
)

logger = logging.getLogger(__name__)

OUTCOME_PROCESSED = "processed"
RESOLVE_BATCH = 100  # guests per ResolveInboundContacts call


@dataclass(frozen=True, slots=True)
class ResolvedSender:
    """The contact and conversation the conversation service resolved for an inbound message."""

    conversation_id: uuid.UUID
    contact: ContactSnapshot


@dataclass(frozen=True, slots=True)
class InboundSender:
    """A guest to resolve: who wrote (or, for an echo, to whom the business wrote), when, and to which number."""

    sender: Sender
    message_at: datetime
    phone_number_id: str | None
    echo: bool = False


class ContactResolver(Protocol):
    async def resolve_inbound_contacts(
        self, *, tenant_id: str, senders: Sequence[InboundSender]
    ) -> list[ResolvedSender]: ...


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


@dataclass(slots=True)
class _Delivery:
    """One delivery of a batch being processed, and what became of its items."""

    tenant_id: str
    delivery: WebhookReceived
    items: WebhookBatch
    tally: Counter[Outcome] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _SenderKey:
    tenant_id: str
    wa_id: str | None
    user_id: str | None
    phone_number_id: str | None
    echo: bool


def _has_sender(message: InboundMessage) -> bool:
    return bool(message.sender.wa_id or message.sender.user_id)


class WebhookProcessor:
    """Deliveries are processed a batch at a time (the records one Kafka fetch returned): the wamids already stored
    are looked up in one transaction (a query per tenant), the new guests' contacts and conversations are resolved
    once each, in one call per tenant, and everything the batch writes (messages, statuses, the deliveries'
    outcomes with their events) goes into one transaction, each tenant's rows under that tenant (row-level
    security). So the cost of a delivery falls as the load rises, instead of a few transactions and a call to the
    conversation service for each. One delivery is a batch of one."""

    def __init__(
        self, *, sessions: SessionFactory, resolver: ContactResolver, events_topic: str, outcomes_topic: str,
        templates: TemplateUpdates | None = None, resolve_concurrency: int = 8,
    ) -> None:
        self._templates = templates
        self._sessions = sessions
        self._resolver = resolver
        self._events_topic = events_topic
        self._outcomes_topic = outcomes_topic
        self._resolving = asyncio.Semaphore(resolve_concurrency)

    async def process(self, envelope: EventEnvelope) -> WebhookProcessed | None:
        """Handles every message, status and error of one delivery, then records its outcome. Safe to repeat:
        a redelivered (or concurrently processed) delivery stores and announces nothing twice."""
        return (await self.process_many([envelope]))[0]

    async def process_many(self, envelopes: Sequence[EventEnvelope]) -> list[WebhookProcessed | None]:
        """`process` for several deliveries at once, in their order; their outcomes (None for an event of another
        type). Any failure fails the whole batch, which is then safe to repeat (or to process one by one)."""
        deliveries: list[_Delivery | None] = []
        for envelope in envelopes:
            if envelope.type != WEBHOOK_RECEIVED:
                logger.info("ignoring an event of another type", extra={"event_type": envelope.type})
                deliveries.append(None)
                continue
            if not envelope.tenant_id:
                raise InvalidArgument("a webhook delivery without its tenant", code="TENANT_REQUIRED")
            delivery = WebhookReceived.model_validate(envelope.data)
            deliveries.append(_Delivery(tenant_id=envelope.tenant_id, delivery=delivery, items=walk(delivery.payload)))
        present = [item for item in deliveries if item is not None]
        for item in present:
            if item.items.templates and self._templates is not None:
                for template_outcome in await self._templates.apply(item.tenant_id, item.items.templates):
                    item.tally[Outcome(template_outcome)] += 1
        stored = await self._stored_wamids(present)
        resolved = await self._resolve_senders(present, stored)
        outcomes: dict[int, WebhookProcessed] = {}
        async with transaction(self._sessions) as session:  # all or nothing, each tenant's rows under its tenant
            async for tenant_id, group in per_tenant(session, present, lambda item: item.tenant_id):
                async with gathered(session):  # the tenant's events and outcomes in one statement
                    inserted = await message_store.store_guest_messages(session, [
                        self._guest_message(item, message, resolved[self._message_key(item, message)])
                        for item in group for message in item.items.messages
                        if message.wamid and _has_sender(message) and (tenant_id, message.wamid) not in stored])
                    wamids = {status.wamid for item in group for status in item.items.statuses}
                    locked = await MessageRepository(session).messages_by_wamid_for_update(
                        tenant_id=tenant_id, wamids=wamids) if wamids else {}
                    deferred: list[tuple[_Delivery, StatusUpdate]] = []
                    for item in group:
                        await self._write(session, item, stored, resolved, inserted, locked, deferred)
                    await self._apply_locked(session, deferred, locked)
                    for item in group:
                        outcome = self._outcome(item)
                        outcomes[id(item)] = outcome
                        await enqueue(session, topic=self._outcomes_topic, key=item.delivery.delivery_id,
                                      event=webhook_processed_event(tenant_id, outcome))
        for item in present:
            for item_outcome, count in item.tally.items():
                WEBHOOK_ITEMS.labels(item_outcome.value).inc(count)
            logger.info("webhook delivery processed",
                        extra={"delivery_id": item.delivery.delivery_id, "detail": outcomes[id(item)].detail})
        return [None if item is None else outcomes[id(item)] for item in deliveries]

    @staticmethod
    def _outcome(item: _Delivery) -> WebhookProcessed:
        for error in item.items.errors:
            item.tally[Outcome.ERROR_REPORTED] += 1
            logger.warning("Meta reported an error", extra={
                "delivery_id": item.delivery.delivery_id, "code": error.code, "title": error.title,
                "details": error.details, "phone_number_id": error.phone_number_id})
        detail = " ".join(f"{outcome.value}={count}" for outcome, count in sorted(item.tally.items()))
        if item.items.ignored:
            detail = f"{detail} ignored={item.items.ignored}".strip()
        return WebhookProcessed(
            delivery_id=item.delivery.delivery_id, outcome=OUTCOME_PROCESSED, messages=len(item.items.messages),
            statuses=len(item.items.statuses), detail=detail or None)

    async def _stored_wamids(self, deliveries: Sequence[_Delivery]) -> set[tuple[str, str]]:
        """(tenant, wamid) of the batch's messages and echoes that are stored already: one transaction, a query per
        tenant."""
        carrying = [item for item in deliveries if item.items.messages or item.items.echoes]
        found: set[tuple[str, str]] = set()
        if not carrying:
            return found
        async with transaction(self._sessions) as session:
            async for tenant_id, group in per_tenant(session, carrying, lambda item: item.tenant_id):
                wamids = {message.wamid for item in group for message in item.items.messages}
                wamids.update(echo.wamid for item in group for echo in item.items.echoes)
                known = await MessageRepository(session).stored_wamids(tenant_id=tenant_id, wamids=wamids)
                found.update((tenant_id, wamid) for wamid in known)
        return found

    async def _resolve_senders(
        self, deliveries: Sequence[_Delivery], stored: set[tuple[str, str]]
    ) -> dict[_SenderKey, ResolvedSender]:
        """The contact and conversation of every guest with a new message (or echo) in the batch, resolved once per
        guest at the guest's latest message time (the window then reaches at least that + 24 h): one call per tenant
        (and per RESOLVE_BATCH guests), different tenants concurrently."""
        latest: dict[_SenderKey, tuple[datetime, Sender]] = {}
        for item in deliveries:
            for message in item.items.messages:
                if (item.tenant_id, message.wamid) in stored or not (message.sender.wa_id or message.sender.user_id):
                    continue
                key = self._message_key(item, message)
                at = message.sent_at or item.delivery.received_at
                if key not in latest or at >= latest[key][0]:
                    latest[key] = (at, message.sender)
            for echo in item.items.echoes:
                if (item.tenant_id, echo.wamid) in stored or not (echo.to or echo.to_user_id):
                    continue
                key = self._echo_key(item, echo)
                at = echo.sent_at or item.delivery.received_at
                if key not in latest or at >= latest[key][0]:
                    latest[key] = (at, Sender(wa_id=echo.to, user_id=echo.to_user_id, profile_name=None))

        by_tenant: dict[str, list[_SenderKey]] = {}
        for key in latest:
            by_tenant.setdefault(key.tenant_id, []).append(key)

        async def resolve(tenant_id: str, keys: list[_SenderKey]) -> list[tuple[_SenderKey, ResolvedSender]]:
            async with self._resolving:
                answers = await self._resolver.resolve_inbound_contacts(tenant_id=tenant_id, senders=[
                    InboundSender(sender=latest[key][1], message_at=latest[key][0],
                                  phone_number_id=key.phone_number_id, echo=key.echo) for key in keys])
            return list(zip(keys, answers, strict=True))

        chunks = [(tenant_id, keys[start:start + RESOLVE_BATCH])
                  for tenant_id, keys in by_tenant.items() for start in range(0, len(keys), RESOLVE_BATCH)]
        return {key: answer for pairs in await asyncio.gather(*(resolve(*chunk) for chunk in chunks))
                for key, answer in pairs}

    @staticmethod
    def _message_key(item: _Delivery, message: InboundMessage) -> _SenderKey:
        return _SenderKey(item.tenant_id, message.sender.wa_id, message.sender.user_id,
                          message.phone_number_id or item.delivery.phone_number_id or None, echo=False)

    @staticmethod
    def _echo_key(item: _Delivery, echo: EchoMessage) -> _SenderKey:
        return _SenderKey(item.tenant_id, echo.to, echo.to_user_id,
                          echo.phone_number_id or item.delivery.phone_number_id or None, echo=True)

    async def _write(self, session: AsyncSession, item: _Delivery, stored: set[tuple[str, str]],
                     resolved: dict[_SenderKey, ResolvedSender], inserted: dict[str, Message],
                     locked: dict[str, Message], deferred: list[tuple[_Delivery, StatusUpdate]]) -> None:
        """A delivery's messages, echoes and statuses, in Meta's order, inside the batch's tenant transaction (its
        guests' messages were inserted together first: `inserted`, by wamid). A status of a message stored before
        the batch (read locked with the others: `locked`, by wamid) waits in `deferred` to be applied with the
        batch's other such statuses; the rest are applied here, one by one."""
        for message in item.items.messages:
            item.tally[await self._receive_message(session, item, message, stored, resolved, inserted)] += 1
        for echo in item.items.echoes:
            item.tally[await self._receive_echo(session, item, echo, stored, resolved)] += 1
        for status in item.items.statuses:
            if status.wamid in locked:
                deferred.append((item, status))
            else:
                item.tally[await self._apply_status(session, item.tenant_id, status)] += 1

    async def _apply_locked(self, session: AsyncSession, deferred: Sequence[tuple[_Delivery, StatusUpdate]],
                            locked: dict[str, Message]) -> None:
        """The deferred statuses of the locked messages, in their order per message: a message's first statuses
        together, then its second ones, … (one statement per round, `message_store.apply_statuses`)."""
        rounds: list[list[tuple[_Delivery, StatusUpdate]]] = []
        counted: Counter[str] = Counter()
        for item, status in deferred:
            position = counted[status.wamid]
            counted[status.wamid] += 1
            if position == len(rounds):
                rounds.append([])
            rounds[position].append((item, status))
        for statuses_round in rounds:
            moved = await message_store.apply_statuses(
                session, [(locked[status.wamid], status) for _, status in statuses_round],
                events_topic=self._events_topic)
            for (item, status), message in zip(statuses_round, moved, strict=True):
                item.tally[Outcome.STATUS_RECORDED if message is None else Outcome.STATUS_APPLIED] += 1
                if message is not None:
                    locked[status.wamid] = message

    async def _receive_message(self, session: AsyncSession, item: _Delivery, inbound: InboundMessage,
                               stored: set[tuple[str, str]], resolved: dict[_SenderKey, ResolvedSender],
                               inserted: dict[str, Message]) -> Outcome:
        """Announces a guest's message the batch inserted (`message.received`, in the same transaction); stored once
        per (tenant, wamid)."""
        if (item.tenant_id, inbound.wamid) in stored:
            return Outcome.DUPLICATE
        if not _has_sender(inbound):
            logger.warning("inbound message without a sender id; skipped", extra={"wamid": inbound.wamid})
            return Outcome.SKIPPED
        sender = resolved[self._message_key(item, inbound)]
        if inbound.wamid:
            row = inserted.pop(inbound.wamid, None)  # taken once: a second copy in the batch is a duplicate
            if row is None:
                return Outcome.DUPLICATE  # a concurrent copy stored it first
            await message_store.announce(session, row, event_type=MESSAGE_RECEIVED, events_topic=self._events_topic,
                                         contact=sender.contact)
            return Outcome.STORED
        written = await message_store.store_message(  # no wamid to store it once by: never seen from Meta
            session, self._guest_message(item, inbound, sender), event_type=MESSAGE_RECEIVED,
            events_topic=self._events_topic, contact=sender.contact)
        return Outcome.DUPLICATE if written is None else Outcome.STORED

    @staticmethod
    def _guest_message(item: _Delivery, inbound: InboundMessage, sender: ResolvedSender) -> Message:
        return Message(
            tenant_id=item.tenant_id,
            conversation_id=sender.conversation_id,
            contact_id=uuid.UUID(sender.contact.id),
            wamid=inbound.wamid or None,
            direction=INBOUND,
            type=inbound.type,
            status=statuses.RECEIVED,
            content=inbound.content,
            context=inbound.context,
            referral=inbound.referral,
            error=inbound.errors,
            raw=inbound.raw,
            phone_number_id=inbound.phone_number_id or item.delivery.phone_number_id or None,
            sent_at=inbound.sent_at or item.delivery.received_at,
            media=media_state.initial(inbound.type, inbound.content),
        )

    async def _receive_echo(self, session: AsyncSession, item: _Delivery, echo: EchoMessage,
                            stored: set[tuple[str, str]], resolved: dict[_SenderKey, ResolvedSender]) -> Outcome:
        """Stores a coexistence echo (a message the business sent from the WhatsApp Business app; reference §12) once
        per (tenant, wamid): an OUTBOUND message from the business app, SENT, announced as `message.created`. Its
        contact and conversation are resolved with `echo=True`: found or opened, the service window left alone."""
        if (item.tenant_id, echo.wamid) in stored:
            return Outcome.ECHO_DUPLICATE
        if not echo.to and not echo.to_user_id:
            logger.warning("echo without a recipient id; skipped", extra={"wamid": echo.wamid})
            return Outcome.ECHO_SKIPPED
        sender = resolved[self._echo_key(item, echo)]
        written = await message_store.store_message(
            session,
            Message(
                tenant_id=item.tenant_id, conversation_id=sender.conversation_id,
                contact_id=uuid.UUID(sender.contact.id), wamid=echo.wamid, direction=OUTBOUND,
                type=echo.type, status=statuses.SENT, content=echo.content, raw=echo.raw,
                phone_number_id=echo.phone_number_id or item.delivery.phone_number_id or None,
                sent_at=echo.sent_at or item.delivery.received_at, source=SOURCE_BUSINESS_APP,
                sender={"kind": SOURCE_BUSINESS_APP}, media=media_state.initial(echo.type, echo.content),
            ),
            event_type=MESSAGE_CREATED,
            events_topic=self._events_topic,
            contact=sender.contact,
        )
        return Outcome.ECHO_DUPLICATE if written is None else Outcome.ECHO_STORED

    async def apply_status(self, tenant_id: str, update: StatusUpdate) -> Outcome:
        """One status in a transaction of its own (see `_apply_status`)."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            return await self._apply_status(session, tenant_id, update)

    async def _apply_status(self, session: AsyncSession, tenant_id: str, update: StatusUpdate) -> Outcome:
        """Records a status in its message's history and moves the message forward; parks it when the message
        is not stored.

        A stored message is read locked (its row lock orders the writers of its statuses; a batch reads the
        messages of its statuses at once beforehand). Only when it is not found does the status take the wamid's
        lock, which the writers of a message with that wamid (an echo, a send's answer) hold until they commit, and
        look again: so a status is never parked just after its message was stored, and the usual case costs no lock
        of its own."""
        repository = MessageRepository(session)
        message = await repository.message_by_wamid(tenant_id=tenant_id, wamid=update.wamid, for_update=True)
        if message is None:
            await repository.lock_wamid(tenant_id=tenant_id, wamid=update.wamid)
            message = await repository.message_by_wamid(tenant_id=tenant_id, wamid=update.wamid, for_update=True)
        if message is None:
            message = await _sent_without_answer(repository, tenant_id, update)
        if message is None:
            await repository.park_status(ParkedStatus(
                tenant_id=tenant_id, wamid=update.wamid, status=update.status, occurred_at=update.occurred_at,
                recipient_id=update.recipient_id, phone_number_id=update.phone_number_id, errors=update.errors,
                payload=update.raw))
            return Outcome.STATUS_PARKED
        moved = await message_store.apply_status(session, message, update, events_topic=self._events_topic)
        return Outcome.STATUS_RECORDED if moved is None else Outcome.STATUS_APPLIED


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
