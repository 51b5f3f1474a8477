"""Unit tests (no I/O): who may resolve contacts, id and timestamp mapping, and the event's camelCase shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conversation_service.events import conversation_event
from conversation_service.grpc_server import parse_rfc3339
from conversation_service.models import Contact, Conversation
from conversation_service.service import ConversationService, InboundContact, phone_from_wa_id
from eva_common.auth import Principal
from eva_common.errors import InvalidArgument, NotFound, PermissionDenied
from eva_common.ids import new_id, parse_id
from eva_events.conversation import CONVERSATION_CREATED


class UnusedSessions:
    """A session factory the rules must reject the call before reaching."""

    def __call__(self) -> None:
        raise AssertionError("the database must not be touched")


class NoUsers:
    async def find(self, *, user_id: str, token: str, as_service: bool = False) -> None:
        raise AssertionError("auth must not be asked")


def principal(kind: str, tenant_id: str | None) -> Principal:
    return Principal(subject="s", kind=kind, role="service" if kind == "service" else "admin",  # type: ignore[arg-type]
                     tenant_id=tenant_id, token="t", token_id="j", issued_at=0, expires_at=0)


def service() -> ConversationService:
    return ConversationService(sessions=UnusedSessions(), events_topic="t", consumer_name="c",  # type: ignore[arg-type]
                               users=NoUsers())


def inbound(
    tenant_id: str = "tenant-a", wa_id: str | None = "16505551234", user_id: str | None = None
) -> InboundContact:
    return InboundContact(tenant_id=tenant_id, wa_id=wa_id, user_id=user_id, profile_name="Sheena",
                          message_at=None, phone_number_id=None)


async def test_a_user_cannot_resolve_inbound_contacts() -> None:
    with pytest.raises(PermissionDenied) as raised:
        await service().resolve_inbound_contact(principal=principal("user", "tenant-a"), inbound=inbound())
    assert raised.value.code == "SERVICE_ONLY"


async def test_a_service_must_name_the_tenant() -> None:
    with pytest.raises(PermissionDenied) as raised:
        await service().resolve_inbound_contact(principal=principal("service", None), inbound=inbound(tenant_id=""))
    assert raised.value.code == "TENANT_REQUIRED"


async def test_a_contact_needs_a_wa_id_or_a_user_id() -> None:
    with pytest.raises(InvalidArgument) as raised:
        await service().resolve_inbound_contact(principal=principal("service", None),
                                                inbound=inbound(wa_id=None, user_id=None))
    assert raised.value.code == "CONTACT_ID_REQUIRED"


async def test_a_malformed_id_is_not_found_without_touching_the_database() -> None:
    with pytest.raises(NotFound):
        await service().get_conversation(principal=principal("user", "tenant-a"), conversation_id="1 OR 1=1")
    with pytest.raises(NotFound):
        await service().get_contact(principal=principal("user", "tenant-a"), contact_id="")


def test_ids_are_uuid7_and_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(5000)]
    assert all(value.version == 7 for value in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert parse_id(str(ids[0])) == ids[0]
    assert parse_id("nope") is None and parse_id("") is None


def test_phone_is_e164_from_the_wa_id() -> None:
    assert phone_from_wa_id("16505551234") == "+16505551234"
    assert phone_from_wa_id(None) is None and phone_from_wa_id("") is None


def test_timestamps_are_read_as_rfc3339_in_utc() -> None:
    assert parse_rfc3339("2026-11-29T10:00:00.000Z", field="f") == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_rfc3339("2026-11-29T12:00:00+02:00", field="f") == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_rfc3339("", field="f") is None
    for bad in ("yesterday", "2026-11-29T10:00:00"):  # not a timestamp; no offset
        with pytest.raises(InvalidArgument):
            parse_rfc3339(bad, field="message_at")


def test_the_conversation_event_is_the_rest_object_in_camel_case_with_its_contact() -> None:
    now = datetime(2026, 11, 29, 10, tzinfo=UTC)
    contact = Contact(id=uuid.uuid4(), tenant_id="tenant-a", wa_id="16505551234", user_id="US.1", name="Sheena",
                      phone="+16505551234", created_at=now, updated_at=now)
    conversation = Conversation(id=uuid.uuid4(), tenant_id="tenant-a", contact_id=contact.id, status="open",
                                last_message_at=now, window_expires_at=now + timedelta(hours=24),
                                phone_number_id="106540352242922", created_at=now, updated_at=now)
    event = conversation_event(CONVERSATION_CREATED, conversation, contact)
    assert event.type == "conversation.created" and event.tenant_id == "tenant-a"
    data = event.data
    assert data["id"] == str(conversation.id) and data["contactId"] == str(contact.id)
    assert data["unreadCount"] == 0 and data["priority"] == "normal" and data["assignedTo"] is None
    assert data["windowExpiresAt"] == "2026-11-30T10:00:00.000Z" and data["phoneNumberId"] == "106540352242922"
    assert data["contact"] == {"id": str(contact.id), "waId": "16505551234",
                               "userId": "US.1", "name": "Sheena", "phone": "+16505551234",
                               "createdAt": "2026-11-29T10:00:00.000Z", "updatedAt": "2026-11-29T10:00:00.000Z"}
