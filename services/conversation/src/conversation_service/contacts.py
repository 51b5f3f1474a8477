"""Contacts entered by attendants: list with search (name or phone, case-insensitive) and keyset pagination,
create (phone: digits with the country code, unique per tenant) and update. Inbound guests are created by
ConversationService.resolve_inbound_contact; a contact created here has wa_id = its digits, so the guest's first
message finds it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import AlreadyExists, InvalidArgument, NotFound
from eva_common.ids import parse_id
from eva_common.outbox import enqueue
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.conversation import CONTACT_CREATED, CONTACT_UPDATED, ContactChange
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from conversation_service.access import require_reader, require_writer
from conversation_service.events import contact_event
from conversation_service.models import Contact
from conversation_service.repository import ConversationRepository

MAX_NAME_LENGTH = 200
CURSOR_KIND = "contact"
_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")  # E.164 without '+': up to 15 digits, no leading zero


def valid_phone(phone: str) -> str:
    digits = phone.strip().removeprefix("+")
    if not _DIGITS.match(digits):
        raise InvalidArgument("phone is the number's digits with the country code (7 to 15 digits)",
                              code="VALIDATION_FAILED")
    return digits


def valid_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH:
        raise InvalidArgument(f"a name has 1 to {MAX_NAME_LENGTH} characters", code="VALIDATION_FAILED")
    return cleaned


def _exists() -> AlreadyExists:
    return AlreadyExists("a contact with this phone already exists", code="CONTACT_EXISTS")


@dataclass(frozen=True, slots=True)
class ContactPage:
    items: list[Contact]
    next_cursor: str | None


class ContactService:
    def __init__(self, *, sessions: SessionFactory, events_topic: str, audit: AuditRecorder) -> None:
        self._sessions = sessions
        self._events_topic = events_topic
        self._audit = audit

    async def list_contacts(self, *, principal: Principal, q: str, limit: int, cursor: str) -> ContactPage:
        """Newest first (keyset by id), optionally those whose name or phone contains `q`."""
        require_reader(principal)
        tenant = principal.tenant_scope("")
        size = page_size(limit)
        after = decode_cursor(cursor, kind=CURSOR_KIND, uuid_id=True)
        before = after.uuid() if after else None
        async with transaction(self._sessions, tenant_id=tenant) as session:
            rows = await ConversationRepository(session).list_contacts(
                tenant_id=tenant, q=q.strip() or None, before=before, limit=size + 1)
        page = rows[:size]
        next_cursor = encode_cursor(Position(CURSOR_KIND, str(page[-1].id))) if len(rows) > size and page else None
        return ContactPage(items=page, next_cursor=next_cursor)

    async def create_contact(self, *, actor: Actor, name: str, phone: str) -> Contact:
        require_writer(actor.principal)
        tenant = actor.principal.tenant_scope("")
        name, digits = valid_name(name), valid_phone(phone)
        try:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = ConversationRepository(session)
                if await repository.contact_by_phone(tenant_id=tenant, digits=digits) is not None:
                    raise _exists()
                contact = await repository.insert_contact(tenant_id=tenant, wa_id=digits, user_id=None, name=name,
                                                          phone=f"+{digits}")
                if contact is None:
                    raise _exists()
                await self._record(session, actor, CONTACT_CREATED, contact, {"name": name, "phone": f"+{digits}"})
                return contact
        except IntegrityError as error:
            raise _exists() from error

    async def update_contact(self, *, actor: Actor, contact_id: str, name: str | None, phone: str | None) -> Contact:
        require_writer(actor.principal)
        tenant = actor.principal.tenant_scope("")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = valid_name(name)
        digits = valid_phone(phone) if phone is not None else None
        key = parse_id(contact_id)
        try:
            async with transaction(self._sessions, tenant_id=tenant) as session:
                repository = ConversationRepository(session)
                contact = None if key is None else await repository.contact(tenant_id=tenant, contact_id=key)
                if contact is None:
                    raise NotFound("contact not found", code="CONTACT_NOT_FOUND")
                if digits is not None and contact.phone != f"+{digits}":
                    other = await repository.contact_by_phone(tenant_id=tenant, digits=digits)
                    if other is not None and other.id != contact.id:
                        raise _exists()
                    changes["phone"] = f"+{digits}"
                    if contact.wa_id is None or contact.phone == f"+{contact.wa_id}":
                        changes["wa_id"] = digits  # the number the guest writes from follows the phone
                changes = {field: value for field, value in changes.items() if getattr(contact, field) != value}
                if not changes:
                    return contact
                updated = await repository.update_contact(tenant_id=tenant, contact_id=contact.id, changes=changes)
                await self._record(session, actor, CONTACT_UPDATED, updated, changes)
                return updated
        except IntegrityError as error:
            raise _exists() from error

    async def _record(
        self, session: AsyncSession, actor: Actor, action: ContactChange, contact: Contact, details: dict[str, Any]
    ) -> None:
        await enqueue(session, topic=self._events_topic, key=str(contact.id), event=contact_event(action, contact))
        await self._audit.record(session, tenant_id=contact.tenant_id, actor=actor, action=action,
                                 target_type="contact", target_id=str(contact.id), details=details)
