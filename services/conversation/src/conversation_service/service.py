"""Use cases of the conversation service: resolving the contact and conversation of an inbound message, reading
them, and keeping a conversation's last message, unread count and window in step with the messaging events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import InvalidArgument, NotFound, Unavailable
from eva_common.outbox import enqueue
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, MessageView
from sqlalchemy.exc import IntegrityError

from conversation_service.events import CONVERSATION_CREATED, CONVERSATION_UPDATED, conversation_event
from conversation_service.ids import parse_id
from conversation_service.models import Contact, Conversation
from conversation_service.repository import ConversationRepository

logger = logging.getLogger(__name__)

# Meta's customer-service window: free-form replies are allowed for 24 hours after the guest's last message.
SERVICE_WINDOW = timedelta(hours=24)
_ATTEMPTS = 2  # the first try, and one retry after losing a race on a unique key


def _utcnow() -> datetime:
    return datetime.now(UTC)


def phone_from_wa_id(wa_id: str | None) -> str | None:
    """E.164 from Meta's wa_id (digits without '+')."""
    if not wa_id:
        return None
    return f"+{wa_id}" if wa_id.isdigit() else wa_id


@dataclass(frozen=True, slots=True)
class InboundContact:
    """Who wrote an inbound message, as Meta identified them."""

    tenant_id: str  # the tenant the calling service names (trusted for service principals only)
    wa_id: str | None
    user_id: str | None
    profile_name: str | None
    message_at: datetime | None
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class ResolvedInbound:
    contact: Contact
    conversation: Conversation
    contact_created: bool
    conversation_created: bool


class _LostRace(Exception):
    """A concurrent writer inserted the row we were about to insert, and it is not visible yet: try again."""


class ConversationService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        events_topic: str,
        consumer_name: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._events_topic = events_topic
        self._consumer_name = consumer_name
        self._clock = clock

    # --- inbound contacts -------------------------------------------------------------------------------------------

    async def resolve_inbound_contact(self, *, principal: Principal, inbound: InboundContact) -> ResolvedInbound:
        """Upserts the contact (by wa_id, else user_id), then finds its open or pending conversation or opens a new
        one, and extends the service window to at least message_at + 24 h. Safe under concurrency: callers racing
        for a new guest end with one contact and one conversation, and only the creator emits
        `conversation.created`."""
        principal.require_service()
        tenant_id = principal.tenant_scope(inbound.tenant_id)
        if not inbound.wa_id and not inbound.user_id:
            raise InvalidArgument("an inbound contact needs a wa_id or a user_id", code="CONTACT_ID_REQUIRED")
        message_at = inbound.message_at or self._clock()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with transaction(self._sessions, tenant_id=tenant_id) as session:
                    repository = ConversationRepository(session)
                    contact, contact_created = await self._upsert_contact(repository, tenant_id, inbound)
                    conversation, conversation_created = await repository.upsert_active_conversation(
                        tenant_id=tenant_id,
                        contact_id=contact.id,
                        message_at=message_at,
                        window_expires_at=message_at + SERVICE_WINDOW,
                        phone_number_id=inbound.phone_number_id or None,
                    )
                    if conversation_created:
                        await enqueue(
                            session,
                            topic=self._events_topic,
                            key=str(conversation.id),
                            event=conversation_event(CONVERSATION_CREATED, conversation, contact),
                        )
                return ResolvedInbound(contact, conversation, contact_created, conversation_created)
            except (IntegrityError, _LostRace) as error:
                logger.info("inbound contact raced a concurrent writer", extra={"attempt": attempt,
                                                                                "error": type(error).__name__})
        raise Unavailable("the contact is being changed concurrently; try again", code="CONCURRENT_UPDATE")

    async def _find_contact(
        self, repository: ConversationRepository, tenant_id: str, inbound: InboundContact
    ) -> Contact | None:
        contact = None
        if inbound.wa_id:
            contact = await repository.contact_by_wa_id(tenant_id=tenant_id, wa_id=inbound.wa_id)
        if contact is None and inbound.user_id:
            contact = await repository.contact_by_user_id(tenant_id=tenant_id, user_id=inbound.user_id)
        return contact

    async def _upsert_contact(
        self, repository: ConversationRepository, tenant_id: str, inbound: InboundContact
    ) -> tuple[Contact, bool]:
        name = (inbound.profile_name or "").strip() or None
        contact = await self._find_contact(repository, tenant_id, inbound)
        if contact is None:
            created = await repository.insert_contact(
                tenant_id=tenant_id,
                wa_id=inbound.wa_id or None,
                user_id=inbound.user_id or None,
                name=name,
                phone=phone_from_wa_id(inbound.wa_id),
            )
            if created is not None:
                return created, True
            contact = await self._find_contact(repository, tenant_id, inbound)  # the concurrent insert committed
            if contact is None:
                raise _LostRace()
        changes: dict[str, Any] = {}
        if name and name != contact.name:
            changes["name"] = name  # Meta sent a new profile name
        if inbound.wa_id and contact.wa_id != inbound.wa_id:
            # Newly known (a BSUID-only contact), or the guest changed number (found by its stable user_id).
            changes["wa_id"] = inbound.wa_id
            if contact.phone in (None, phone_from_wa_id(contact.wa_id)):
                changes["phone"] = phone_from_wa_id(inbound.wa_id)
        if inbound.user_id and contact.user_id is None:
            owner = await repository.contact_by_user_id(tenant_id=tenant_id, user_id=inbound.user_id)
            if owner is None:
                changes["user_id"] = inbound.user_id
            else:  # two contacts of one guest: merging them is an attendant's decision, not this call's
                logger.warning("user id already belongs to another contact", extra={
                    "contact_id": str(contact.id), "other_contact_id": str(owner.id)})
        if changes:
            contact = await repository.update_contact(tenant_id=tenant_id, contact_id=contact.id, changes=changes)
        return contact, False

    # --- reads -----------------------------------------------------------------------------------------------------

    async def get_conversation(
        self, *, principal: Principal, conversation_id: str, tenant_id: str = ""
    ) -> tuple[Conversation, Contact]:
        """A conversation of the caller's tenant (a service names the tenant), with its contact."""
        tenant = principal.tenant_scope(tenant_id)
        key = parse_id(conversation_id)
        if key is not None:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = ConversationRepository(session)
                conversation = await repository.conversation(tenant_id=tenant, conversation_id=key)
                contact = None
                if conversation is not None:
                    contact = await repository.contact(tenant_id=tenant, contact_id=conversation.contact_id)
            if conversation is not None and contact is not None:
                return conversation, contact
        raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")

    async def get_contact(self, *, principal: Principal, contact_id: str, tenant_id: str = "") -> Contact:
        tenant = principal.tenant_scope(tenant_id)
        key = parse_id(contact_id)
        if key is not None:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                contact = await ConversationRepository(session).contact(tenant_id=tenant, contact_id=key)
            if contact is not None:
                return contact
        raise NotFound("contact not found", code="CONTACT_NOT_FOUND")

    # --- messaging events ------------------------------------------------------------------------------------------

    async def apply_message_event(self, *, event: EventEnvelope) -> bool:
        """Applies `message.received` (last message, +1 unread, window) or `message.created` (last message) once
        per event id, and emits `conversation.updated`. Returns False for a redelivery or an event it ignores."""
        if event.type not in (MESSAGE_RECEIVED, MESSAGE_CREATED):
            return False
        message = MessageView.model_validate(event.data)
        conversation_id = parse_id(message.conversation_id)
        if conversation_id is None:
            raise InvalidArgument("the message names no valid conversation id", code="BAD_EVENT")
        inbound = message.direction == "inbound"
        sent_at = message.sent_at or message.created_at
        async with transaction(self._sessions, tenant_id=event.tenant_id) as session:
            repository = ConversationRepository(session)
            if not await repository.claim_event(consumer=self._consumer_name, event_id=event.id):
                return False
            conversation = await repository.record_message(
                tenant_id=event.tenant_id,
                conversation_id=conversation_id,
                sent_at=sent_at,
                inbound=inbound,
                window_expires_at=sent_at + SERVICE_WINDOW if inbound else None,
            )
            if conversation is None:
                logger.warning("message event for an unknown conversation", extra={
                    "event_id": event.id, "conversation_id": message.conversation_id})
                return False
            contact = await repository.contact(tenant_id=event.tenant_id, contact_id=conversation.contact_id)
            if contact is None:
                raise NotFound("the conversation's contact is missing", code="CONTACT_NOT_FOUND")
            await enqueue(
                session,
                topic=self._events_topic,
                key=str(conversation.id),
                event=conversation_event(CONVERSATION_UPDATED, conversation, contact),
            )
        return True
