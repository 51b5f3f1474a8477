"""Use cases of the conversation service: resolving the contact and conversation of an inbound message (reopening a
resolved one), the inbox (list, update, assign, tags on a conversation), and keeping a conversation's last message,
unread count and window in step with the messaging events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.db import SessionFactory, is_retryable_conflict, per_tenant, transaction
from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from eva_common.ids import parse_id
from eva_common.inbox import claim_events
from eva_common.outbox import enqueue, gathered
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.conversation import (
    CONVERSATION_ASSIGNED,
    CONVERSATION_CREATED,
    CONVERSATION_UPDATED,
    ConversationChange,
)
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_READ, MESSAGE_RECEIVED, MessagesRead, MessageView
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.access import require_reader, require_writer
from conversation_service.events import assigned_event, conversation_event
from conversation_service.models import PRIORITIES, STATUSES, Contact, Conversation, Tag
from conversation_service.repository import ConversationFilter, ConversationRepository
from conversation_service.users import UserDirectory

logger = logging.getLogger(__name__)

# Meta's customer-service window: free-form replies are allowed for 24 hours after the guest's last message.
SERVICE_WINDOW = timedelta(hours=24)
_ATTEMPTS = 2  # the first try, and one retry after losing a race on a unique key
PREVIEW_LENGTH = 120
INBOX_CURSOR = "conv"


def message_preview(message: MessageView) -> str:
    """The inbox line of a message: its text (truncated to 120 characters), else its type, e.g. "[image]"."""
    if message.type == "text":
        body = message.content.get("body")
        if isinstance(body, str) and body.strip():
            return body[:PREVIEW_LENGTH]
    return f"[{message.type}]"


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
    # a message the business sent from the WhatsApp Business app (coexistence): no window, no reopening
    echo: bool = False


@dataclass(frozen=True, slots=True)
class ConversationDetails:
    """A conversation as the API shows it: with its contact and tags."""

    conversation: Conversation
    contact: Contact
    tags: list[Tag]


@dataclass(frozen=True, slots=True)
class ConversationPage:
    items: list[ConversationDetails]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ConversationQuery:
    status: str = ""
    assigned_to: str = ""
    unassigned: bool = False
    tag: str = ""  # a tag id or name
    q: str = ""
    updated_since: datetime | None = None
    limit: int = 0
    cursor: str = ""


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
        users: UserDirectory,
        audit: AuditRecorder | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._users = users
        self._audit = audit if audit is not None else AuditRecorder()
        self._events_topic = events_topic
        self._consumer_name = consumer_name
        self._clock = clock

    # --- inbound contacts -------------------------------------------------------------------------------------------

    async def resolve_inbound_contact(self, *, principal: Principal, inbound: InboundContact) -> ResolvedInbound:
        """Upserts the contact (by wa_id, else user_id), then reopens its latest conversation when it is resolved
        (announced as `conversation.updated`), else finds its open or pending one or opens a new one, and extends
        the service window to at least message_at + 24 h. Safe under concurrency: callers racing
        for a new guest end with one contact and one conversation, and only the creator emits
        `conversation.created`.

        A coexistence echo (`inbound.echo`: the business wrote from the WhatsApp Business app) finds or creates the
        contact the same way, but takes its open or pending conversation as it is, else its latest one as it is
        (a resolved one stays resolved), and opens one (with no window) only for a contact that has none: the
        service window opens only when the guest writes."""
        return (await self.resolve_inbound_contacts(principal=principal, inbounds=[inbound]))[0]

    async def resolve_inbound_contacts(
        self, *, principal: Principal, inbounds: Sequence[InboundContact]
    ) -> list[ResolvedInbound]:
        """`resolve_inbound_contact` for several guests of one tenant (a batch of webhook deliveries) in one
        transaction; the answers in the order of `inbounds`. A lost race retries the whole batch once."""
        principal.require_service()
        if not inbounds:
            return []
        tenants = {inbound.tenant_id for inbound in inbounds}
        if len(tenants) != 1:
            raise InvalidArgument("inbound contacts of one tenant at a time", code="ONE_TENANT_PER_CALL")
        tenant_id = principal.tenant_scope(inbounds[0].tenant_id)
        for inbound in inbounds:
            if not inbound.wa_id and not inbound.user_id:
                raise InvalidArgument("an inbound contact needs a wa_id or a user_id", code="CONTACT_ID_REQUIRED")
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with transaction(self._sessions, tenant_id=tenant_id) as session, gathered(session):
                    repository = ConversationRepository(session)
                    known = await repository.contacts_by_wa_id(  # the batch's returning guests, in one query
                        tenant_id=tenant_id, wa_ids=sorted({inbound.wa_id for inbound in inbounds if inbound.wa_id}))
                    # their open conversations locked first, in id order, as the messaging events' consumer takes
                    # them: two transactions over the same conversations then never wait for each other in a cycle
                    await repository.lock_active_conversations(
                        tenant_id=tenant_id, contact_ids=[contact.id for contact in known.values()])
                    return [await self._resolve(session, repository, tenant_id, inbound, known)
                            for inbound in inbounds]
            except Exception as error:
                if not isinstance(error, IntegrityError | _LostRace) and not is_retryable_conflict(error):
                    raise
                logger.info("inbound contact raced a concurrent writer", extra={"attempt": attempt,
                                                                                "error": type(error).__name__})
        raise Unavailable("the contact is being changed concurrently; try again", code="CONCURRENT_UPDATE")

    async def _resolve(self, session: AsyncSession, repository: ConversationRepository, tenant_id: str,
                       inbound: InboundContact, known: dict[str, Contact] | None = None) -> ResolvedInbound:
        """One guest's contact and conversation. `known`: contacts by wa_id read beforehand, kept current here."""
        message_at = inbound.message_at or self._clock()
        contact, contact_created = await self._upsert_contact(repository, tenant_id, inbound, known)
        if known is not None and contact.wa_id:
            known[contact.wa_id] = contact
        if inbound.echo:
            conversation, conversation_created = await self._echo_conversation(
                repository, tenant_id, contact, inbound, message_at)
            if conversation_created:
                await enqueue(session, topic=self._events_topic, key=str(conversation.id),
                              event=conversation_event(CONVERSATION_CREATED, conversation, contact))
            return ResolvedInbound(contact, conversation, contact_created, conversation_created)
        conversation, conversation_created, reopened = await repository.open_for_message(
            tenant_id=tenant_id,
            contact_id=contact.id,
            message_at=message_at,
            window_expires_at=message_at + SERVICE_WINDOW,
            phone_number_id=inbound.phone_number_id or None,
        )
        if reopened:
            await self._announce(session, repository, CONVERSATION_UPDATED, conversation, contact)
        if conversation_created:
            await enqueue(
                session,
                topic=self._events_topic,
                key=str(conversation.id),
                event=conversation_event(CONVERSATION_CREATED, conversation, contact),
            )
        return ResolvedInbound(contact, conversation, contact_created, conversation_created)

    @staticmethod
    async def _echo_conversation(
        repository: ConversationRepository, tenant_id: str, contact: Contact, inbound: InboundContact,
        message_at: datetime,
    ) -> tuple[Conversation, bool]:
        """The conversation of a coexistence echo: the contact's active or latest one untouched, else a new open
        one without a window."""
        latest = await repository.latest_conversation(tenant_id=tenant_id, contact_id=contact.id)
        if latest is not None:
            return latest, False
        return await repository.upsert_active_conversation(
            tenant_id=tenant_id, contact_id=contact.id, message_at=message_at, window_expires_at=None,
            phone_number_id=inbound.phone_number_id or None,
        )

    async def _find_contact(
        self, repository: ConversationRepository, tenant_id: str, inbound: InboundContact,
        known: dict[str, Contact] | None = None,
    ) -> Contact | None:
        contact = None
        if inbound.wa_id:
            contact = known.get(inbound.wa_id) if known is not None else None
            if contact is None:
                contact = await repository.contact_by_wa_id(tenant_id=tenant_id, wa_id=inbound.wa_id)
        if contact is None and inbound.user_id:
            contact = await repository.contact_by_user_id(tenant_id=tenant_id, user_id=inbound.user_id)
        return contact

    async def _upsert_contact(
        self, repository: ConversationRepository, tenant_id: str, inbound: InboundContact,
        known: dict[str, Contact] | None = None,
    ) -> tuple[Contact, bool]:
        name = (inbound.profile_name or "").strip() or None
        contact = await self._find_contact(repository, tenant_id, inbound, known)
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
        details = await self.conversation_details(principal=principal, conversation_id=conversation_id,
                                                  tenant_id=tenant_id)
        return details.conversation, details.contact

    async def conversation_details(
        self, *, principal: Principal, conversation_id: str, tenant_id: str = ""
    ) -> ConversationDetails:
        """A conversation of the caller's tenant with its contact and tags; another tenant's id is not found."""
        require_reader(principal)
        tenant = principal.tenant_scope(tenant_id)
        key = _conversation_key(conversation_id)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            conversation = await repository.conversation(tenant_id=tenant, conversation_id=key)
            if conversation is None:
                raise _conversation_not_found()
            return await _details(repository, conversation)

    async def get_contact(self, *, principal: Principal, contact_id: str, tenant_id: str = "") -> Contact:
        require_reader(principal)
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
        """Applies `message.received` (last message, +1 unread, window), `message.created` (last message; an
        outbound message never touches the unread count or the window) or `message.read` (see `_apply_read`) once
        per event id, and emits `conversation.updated`. Returns False for a redelivery or an event it ignores
        (`message.status_changed`, `message.updated`, `template.updated`, …)."""
        return await self.apply_message_events([event]) == 1

    async def apply_message_events(self, events: Sequence[EventEnvelope]) -> int:
        """`apply_message_event` for the events of a Kafka fetch: one transaction (each tenant's events under that
        tenant), in the events' order, and one `conversation.updated` per conversation that changed, with its state
        after the whole batch (a burst of a guest's messages is one announcement, not one each). Returns how many
        events changed a conversation."""
        applicable = [event for event in events if event.type in (MESSAGE_RECEIVED, MESSAGE_CREATED, MESSAGE_READ)]
        applied = 0
        async with transaction(self._sessions) as session:  # all or nothing, each tenant's rows under its tenant
            repository = ConversationRepository(session)
            async for tenant_id, group in per_tenant(session, applicable, lambda event: event.tenant_id):
                changed: dict[uuid.UUID, Conversation] = {}
                claims = await claim_events(session, consumer=self._consumer_name,
                                            event_ids=[event.id for event in group])
                # conversations in id order (each one's events in theirs), the order ResolveInboundContacts locks
                # them in: never a deadlock between the two
                for event in sorted(group, key=lambda event: str(event.data.get("conversationId") or "")):
                    if not claims.first(event.id):
                        continue
                    apply = self._apply_read if event.type == MESSAGE_READ else self._apply_message
                    conversation = await apply(repository, event)
                    if conversation is not None:
                        changed[conversation.id] = conversation
                        applied += 1
                await self._announce_updates(session, repository, tenant_id, list(changed.values()))
        return applied

    async def _announce_updates(self, session: AsyncSession, repository: ConversationRepository, tenant_id: str,
                                conversations: Sequence[Conversation]) -> None:
        """`conversation.updated` for each of a tenant's conversations, their contacts and tags read in one query
        each for all of them."""
        if not conversations:
            return
        contacts = await repository.contacts(tenant_id=tenant_id,
                                             contact_ids=list({c.contact_id for c in conversations}))
        tags = await repository.tags_of(tenant_id=tenant_id, conversation_ids=[c.id for c in conversations])
        async with gathered(session):  # one statement for the tenant's announcements
            for conversation in conversations:
                contact = contacts.get(conversation.contact_id)
                if contact is None:
                    raise NotFound("the conversation's contact is missing", code="CONTACT_NOT_FOUND")
                await enqueue(session, topic=self._events_topic, key=str(conversation.id), event=conversation_event(
                    CONVERSATION_UPDATED, conversation, contact, tags.get(conversation.id, [])))

    @staticmethod
    async def _apply_message(repository: ConversationRepository, event: EventEnvelope) -> Conversation | None:
        message = MessageView.model_validate(event.data)
        conversation_id = parse_id(message.conversation_id)
        if conversation_id is None:
            raise InvalidArgument("the message names no valid conversation id", code="BAD_EVENT")
        inbound = message.direction == "inbound"
        sent_at = message.sent_at or message.created_at
        conversation = await repository.record_message(
            tenant_id=event.tenant_id,
            conversation_id=conversation_id,
            sent_at=sent_at,
            inbound=inbound,
            preview=message_preview(message),
            window_expires_at=sent_at + SERVICE_WINDOW if inbound else None,
        )
        if conversation is None:
            logger.warning("message event for an unknown conversation", extra={
                "event_id": event.id, "conversation_id": message.conversation_id})
        return conversation

    @staticmethod
    async def _apply_read(repository: ConversationRepository, event: EventEnvelope) -> Conversation | None:
        """`message.read`: an attendant read the conversation's guest messages. The unread count drops to 0 unless
        the guest wrote after the latest message read (`messageSentAt`; absent: whatever came in). None when
        nothing changed."""
        read = MessagesRead.model_validate(event.data)
        conversation_id = parse_id(read.conversation_id)
        if conversation_id is None:
            raise InvalidArgument("the read names no valid conversation id", code="BAD_EVENT")
        conversation = await repository.mark_read(tenant_id=event.tenant_id, conversation_id=conversation_id,
                                                  read_up_to=read.message_sent_at)
        if conversation is None:
            logger.info("read changed no unread count", extra={
                "event_id": event.id, "conversation_id": read.conversation_id})
        return conversation

    # --- the inbox -------------------------------------------------------------------------------------------------

    async def list_conversations(self, *, principal: Principal, query: ConversationQuery) -> ConversationPage:
        """The caller's tenant's conversations, latest activity first, one keyset page at a time."""
        require_reader(principal)
        tenant = principal.tenant_scope("")
        if query.status and query.status not in STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}", code="VALIDATION_FAILED")
        limit = page_size(query.limit)
        after = decode_cursor(query.cursor, kind=INBOX_CURSOR, timed=True, uuid_id=True)
        q = query.q.strip()
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            tag_id = None
            if query.tag:
                tag = await _find_tag(repository, tenant, query.tag)
                if tag is None:  # an unknown tag matches nothing
                    return ConversationPage(items=[], next_cursor=None)
                tag_id = tag.id
            filters = ConversationFilter(
                status=query.status or None, assigned_to=query.assigned_to or None, unassigned=query.unassigned,
                tag_id=tag_id, q=q or None, updated_since=query.updated_since,
            )
            rows = await repository.list_conversations(tenant_id=tenant, filters=filters, after=after,
                                                       limit=limit + 1)
            page, more = rows[:limit], len(rows) > limit
            tags = await repository.tags_of(tenant_id=tenant, conversation_ids=[row[0].id for row in page])
        items = [ConversationDetails(conversation, contact, tags.get(conversation.id, []))
                 for conversation, contact in page]
        next_cursor = None
        if more and page:
            last = page[-1][0]
            next_cursor = encode_cursor(Position(INBOX_CURSOR, str(last.id), last.last_message_at))
        return ConversationPage(items=items, next_cursor=next_cursor)

    async def update_conversation(
        self, *, actor: Actor, conversation_id: str, status: str | None, priority: str | None
    ) -> ConversationDetails:
        """Changes status (open | pending | resolved) and/or priority (low | normal | high | urgent)."""
        principal = actor.principal
        require_writer(principal)
        tenant = principal.tenant_scope("")
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}", code="VALIDATION_FAILED")
        if priority is not None and priority not in PRIORITIES:
            raise InvalidArgument(f"priority must be one of {', '.join(PRIORITIES)}", code="VALIDATION_FAILED")
        key = _conversation_key(conversation_id)
        try:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = ConversationRepository(session)
                current = await repository.conversation_for_update(tenant_id=tenant, conversation_id=key)
                if current is None:
                    raise _conversation_not_found()
                changes: dict[str, Any] = {}
                if status is not None and status != current.status:
                    changes["status"] = status
                if priority is not None and priority != current.priority:
                    changes["priority"] = priority
                if not changes:
                    return await _details(repository, current)
                before = {name: getattr(current, name) for name in changes}
                updated = await repository.update_conversation(tenant_id=tenant, conversation_id=key,
                                                               changes=changes)
                details = await self._announce(session, repository, CONVERSATION_UPDATED, updated)
                await self._audit.record(session, tenant_id=tenant, actor=actor, action=CONVERSATION_UPDATED,
                                         target_type="conversation", target_id=str(key),
                                         details={"changes": changes, "previous": before})
                return details
        except IntegrityError as error:  # reopening while the guest already has another open conversation
            raise FailedPrecondition("the contact already has an open or pending conversation",
                                     code="CONVERSATION_ACTIVE_EXISTS") from error

    async def assign_conversation(
        self, *, actor: Actor, conversation_id: str, attendant_id: str
    ) -> ConversationDetails:
        """Assigns to an active user of the same tenant (checked at auth with the caller's token), or to nobody."""
        principal = actor.principal
        require_writer(principal)
        tenant = principal.tenant_scope("")
        key = _conversation_key(conversation_id)
        assignee = attendant_id.strip() or None
        if assignee is not None:
            user = await self._users.find(user_id=assignee, token=principal.token,
                                         as_service=principal.is_api_key)
            if user is None or user.tenant_id != tenant or not user.active:
                raise FailedPrecondition("the assignee must be an active user of this tenant",
                                         code="ASSIGNEE_INVALID")
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            current = await repository.conversation_for_update(tenant_id=tenant, conversation_id=key)
            if current is None:
                raise _conversation_not_found()
            previous = current.assigned_to
            if previous == assignee:
                return await _details(repository, current)
            updated = await repository.update_conversation(tenant_id=tenant, conversation_id=key,
                                                           changes={"assigned_to": assignee})
            await enqueue(session, topic=self._events_topic, key=str(key), event=assigned_event(updated, previous))
            details = await self._announce(session, repository, CONVERSATION_UPDATED, updated)
            await self._audit.record(session, tenant_id=tenant, actor=actor, action=CONVERSATION_ASSIGNED,
                                     target_type="conversation", target_id=str(key),
                                     details={"attendantId": assignee, "previousAttendantId": previous})
            return details

    async def change_tag(self, *, actor: Actor, conversation_id: str, tag_id: str, attach: bool) -> ConversationDetails:
        """Attaches or detaches a tag of the tenant (idempotent: no change, no event)."""
        principal = actor.principal
        require_writer(principal)
        tenant = principal.tenant_scope("")
        key = _conversation_key(conversation_id)
        tag_key = parse_id(tag_id)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            repository = ConversationRepository(session)
            conversation = await repository.conversation_for_update(tenant_id=tenant, conversation_id=key)
            if conversation is None:
                raise _conversation_not_found()
            tag = None if tag_key is None else await repository.tag(tenant_id=tenant, tag_id=tag_key)
            if tag is None:
                raise NotFound("tag not found", code="TAG_NOT_FOUND")
            if attach:
                changed = await repository.attach_tag(tenant_id=tenant, conversation_id=key, tag_id=tag.id)
            else:
                changed = await repository.detach_tag(tenant_id=tenant, conversation_id=key, tag_id=tag.id)
            if not changed:
                return await _details(repository, conversation)
            updated = await repository.update_conversation(tenant_id=tenant, conversation_id=key, changes={})
            details = await self._announce(session, repository, CONVERSATION_UPDATED, updated)
            await self._audit.record(
                session, tenant_id=tenant, actor=actor,
                action="conversation.tag_attached" if attach else "conversation.tag_detached",
                target_type="conversation", target_id=str(key), details={"tagId": str(tag.id), "tagName": tag.name},
            )
            return details

    async def _announce(
        self,
        session: AsyncSession,
        repository: ConversationRepository,
        event_type: ConversationChange,
        conversation: Conversation,
        contact: Contact | None = None,
    ) -> ConversationDetails:
        """Enqueues the conversation (with contact and tags) as `event_type`, keyed by its id; returns it."""
        details = await _details(repository, conversation, contact)
        await enqueue(session, topic=self._events_topic, key=str(conversation.id),
                      event=conversation_event(event_type, conversation, details.contact, details.tags))
        return details


def _conversation_not_found() -> NotFound:
    return NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")


def _conversation_key(conversation_id: str) -> uuid.UUID:
    key = parse_id(conversation_id)
    if key is None:
        raise _conversation_not_found()
    return key


async def _details(
    repository: ConversationRepository, conversation: Conversation, contact: Contact | None = None
) -> ConversationDetails:
    tenant = conversation.tenant_id
    if contact is None:
        contact = await repository.contact(tenant_id=tenant, contact_id=conversation.contact_id)
        if contact is None:
            raise NotFound("the conversation's contact is missing", code="CONTACT_NOT_FOUND")
    tags = await repository.tags_of(tenant_id=tenant, conversation_ids=[conversation.id])
    return ConversationDetails(conversation, contact, tags.get(conversation.id, []))


async def _find_tag(repository: ConversationRepository, tenant: str, tag: str) -> Tag | None:
    """A tag named by its id or its name (any case)."""
    key = parse_id(tag)
    if key is not None:
        found = await repository.tag(tenant_id=tenant, tag_id=key)
        if found is not None:
            return found
    return await repository.tag_by_name(tenant_id=tenant, name=tag.strip())
