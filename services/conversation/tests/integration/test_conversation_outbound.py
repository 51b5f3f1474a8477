"""Outbound messaging as the conversation service sees it: coexistence echoes (ResolveInboundContact.echo) never
open or extend the service window nor reopen a resolved conversation; `message.read` resets the unread count once,
unless the guest wrote after what was read; an outbound `message.created` never touches the unread count or the
window; `template.updated` on the same topic is ignored."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eva.conversation.v1 import conversation_pb2
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import (
    MESSAGE_CREATED,
    MESSAGE_READ,
    MESSAGE_RECEIVED,
    TEMPLATE_UPDATED,
    MessagesRead,
    MessageView,
    SenderView,
    TemplateView,
)
from eva_events.topics import dlq

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def wa_id() -> str:
    return "3519" + str(secrets.randbelow(10**8)).zfill(8)


async def resolve(harness, issuer, tenant_id: str, *, at: datetime, echo: bool = False, wa: str | None = None,
                  user_id: str = "", name: str = "") -> conversation_pb2.ResolveInboundContactResponse:
    return await harness.stub.ResolveInboundContact(
        conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant_id, wa_id=wa or "", user_id=user_id,
                                                      profile_name=name, message_at=at.isoformat(),
                                                      phone_number_id="106540352242922", echo=echo),
        metadata=auth(issuer.service_token(service="messaging")))


async def get_conversation(harness, issuer, tenant_id: str, conversation_id: str) -> conversation_pb2.Conversation:
    return await harness.stub.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_id),
        metadata=auth(issuer.service_token()))


async def announced(owner_db, harness, tenant_id: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
    """The conversation events of the tenant written to the outbox, oldest first."""
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows = await owner_db.fetch("SELECT payload FROM outbox WHERE tenant_id = $1 AND topic = $2 ORDER BY id",
                                    tenant_id, harness.events_topic)
    events = [json.loads(bytes(row["payload"])) for row in rows]
    return [event for event in events if conversation_id is None or event["data"].get("id") == conversation_id]


async def stored(owner_db, tenant_id: str, conversation_id: str) -> Any:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        return await owner_db.fetchrow(
            "SELECT status, unread_count, window_expires_at, last_inbound_at, last_message_at, last_message_preview "
            "FROM conversations WHERE id = $1", uuid.UUID(conversation_id))


def message_event(tenant_id: str, resolved: conversation_pb2.ResolveInboundContactResponse, *, sent_at: datetime,
                  event_type: str = MESSAGE_RECEIVED, direction: str = "inbound", body: str = "hello"
                  ) -> EventEnvelope:
    outbound = direction == "outbound"
    view = MessageView(
        id=str(uuid.uuid4()), conversation_id=resolved.conversation.id, contact_id=resolved.contact.id,
        wamid=f"wamid.{secrets.token_hex(8)}", direction=direction, type="text",
        status="PENDING" if outbound else "RECEIVED", content={"body": body}, sent_at=sent_at, created_at=sent_at,
        sender=SenderView(kind="user", id="u-1", name="Ana") if outbound else None,
        source="eva" if outbound else "whatsapp")
    return make_event(event_type, tenant_id=tenant_id, data=view)


def read_event(tenant_id: str, conversation_id: str, *, message_sent_at: datetime | None) -> EventEnvelope:
    data = MessagesRead(conversation_id=conversation_id, message_id=str(uuid.uuid4()),
                        message_sent_at=message_sent_at, read_at=T0 + timedelta(hours=2),
                        read_by=SenderView(kind="user", id="u-1", name="Ana"), marked=2)
    return make_event(MESSAGE_READ, tenant_id=tenant_id, data=data)


# ---------------------------------------------------------------- coexistence echoes


async def test_an_echo_to_a_new_guest_opens_a_conversation_without_a_window(harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    echoed = await resolve(harness, issuer, tenant, at=T0, echo=True, wa=wa_id())
    assert echoed.contact_created and echoed.conversation_created
    assert (echoed.conversation.status, echoed.conversation.window_expires_at) == ("open", "")
    row = await stored(owner_db, tenant, echoed.conversation.id)
    assert (row["window_expires_at"], row["last_inbound_at"], row["unread_count"]) == (None, None, 0)
    events = await announced(owner_db, harness, tenant, echoed.conversation.id)
    assert [event["type"] for event in events] == ["conversation.created"]
    assert events[0]["data"]["windowExpiresAt"] is None

    again = await resolve(harness, issuer, tenant, at=T0 + timedelta(minutes=1), echo=True,
                          wa=echoed.contact.wa_id)
    assert (again.conversation.id, again.contact_created, again.conversation_created) == (
        echoed.conversation.id, False, False)
    guest = await resolve(harness, issuer, tenant, at=T0 + timedelta(minutes=5), wa=echoed.contact.wa_id)
    assert guest.conversation.id == echoed.conversation.id  # the guest's answer opens the window on it
    assert guest.conversation.window_expires_at == "2026-12-07T09:05:00.000Z"


async def test_an_echo_never_extends_the_window_nor_touches_last_inbound(harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id(), name="Guest")
    await harness.app.service.apply_message_event(event=message_event(tenant, guest, sent_at=T0))
    before = await stored(owner_db, tenant, guest.conversation.id)
    echoed = await resolve(harness, issuer, tenant, at=T0 + timedelta(hours=30), echo=True,
                           wa=guest.contact.wa_id)
    assert (echoed.conversation.id, echoed.conversation_created) == (guest.conversation.id, False)
    assert echoed.conversation.window_expires_at == "2026-12-07T09:00:00.000Z"  # still the guest's T0 + 24 h
    after = await stored(owner_db, tenant, guest.conversation.id)
    assert (after["window_expires_at"], after["last_inbound_at"], after["unread_count"]) == (
        before["window_expires_at"], before["last_inbound_at"], 1)
    assert after["last_inbound_at"] == T0


async def test_an_echo_never_reopens_a_resolved_conversation(harness, issuer, inbox, owner_db) -> None:
    tenant = inbox.new_tenant()
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id())
    await harness.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=guest.conversation.id, status="resolved"),
        metadata=inbox.user(tenant))
    events_before = len(await announced(owner_db, harness, tenant, guest.conversation.id))
    echoed = await resolve(harness, issuer, tenant, at=T0 + timedelta(days=2), echo=True, wa=guest.contact.wa_id)
    assert (echoed.conversation.id, echoed.conversation.status, echoed.conversation_created) == (
        guest.conversation.id, "resolved", False)
    assert echoed.conversation.window_expires_at == "2026-12-07T09:00:00.000Z"
    assert len(await announced(owner_db, harness, tenant, guest.conversation.id)) == events_before  # nothing new
    assert (await stored(owner_db, tenant, guest.conversation.id))["status"] == "resolved"

    reopened = await resolve(harness, issuer, tenant, at=T0 + timedelta(days=2, minutes=1), wa=guest.contact.wa_id)
    assert (reopened.conversation.id, reopened.conversation.status) == (guest.conversation.id, "open")


async def test_an_echo_finds_a_contact_by_its_user_id(harness, issuer) -> None:
    tenant = str(uuid.uuid4())
    user_id = f"US.{secrets.token_hex(8)}"
    guest = await resolve(harness, issuer, tenant, at=T0, user_id=user_id)
    echoed = await resolve(harness, issuer, tenant, at=T0 + timedelta(minutes=1), echo=True, user_id=user_id)
    assert (echoed.contact.id, echoed.contact_created, echoed.conversation.id) == (
        guest.contact.id, False, guest.conversation.id)


# ---------------------------------------------------------------- message.read


async def test_a_read_resets_the_unread_count_once_and_announces_it(harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id())
    service = harness.app.service
    for minutes in (1, 2):
        await service.apply_message_event(event=message_event(tenant, guest, sent_at=T0 + timedelta(minutes=minutes)))
    assert (await get_conversation(harness, issuer, tenant, guest.conversation.id)).unread_count == 2

    read = read_event(tenant, guest.conversation.id, message_sent_at=T0 + timedelta(minutes=2))
    assert await service.apply_message_event(event=read) is True
    assert await service.apply_message_event(event=read) is False  # the same event again: once
    conversation = await get_conversation(harness, issuer, tenant, guest.conversation.id)
    assert conversation.unread_count == 0 and conversation.window_expires_at == "2026-12-07T09:02:00.000Z"
    updates = [event["data"]["unreadCount"] for event in await announced(owner_db, harness, tenant,
                                                                         guest.conversation.id)
               if event["type"] == "conversation.updated"]
    assert updates == [1, 2, 0]

    nothing_unread = read_event(tenant, guest.conversation.id, message_sent_at=T0 + timedelta(minutes=2))
    assert await service.apply_message_event(event=nothing_unread) is False  # no change, no announcement
    assert len(await announced(owner_db, harness, tenant, guest.conversation.id)) == 4  # created + 3 updates


async def test_a_read_older_than_the_latest_guest_message_leaves_the_count(harness, issuer) -> None:
    tenant = str(uuid.uuid4())
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id())
    service = harness.app.service
    await service.apply_message_event(event=message_event(tenant, guest, sent_at=T0 + timedelta(minutes=1)))
    await service.apply_message_event(event=message_event(tenant, guest, sent_at=T0 + timedelta(minutes=3)))
    stale = read_event(tenant, guest.conversation.id, message_sent_at=T0 + timedelta(minutes=1))
    assert await service.apply_message_event(event=stale) is False
    assert (await get_conversation(harness, issuer, tenant, guest.conversation.id)).unread_count == 2
    undated = read_event(tenant, guest.conversation.id, message_sent_at=None)  # no time: whatever came in
    assert await service.apply_message_event(event=undated) is True
    assert (await get_conversation(harness, issuer, tenant, guest.conversation.id)).unread_count == 0


async def test_reads_and_template_updates_through_the_consumer(harness, issuer, kafka, eventually) -> None:
    tenant = str(uuid.uuid4())
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id())
    key = guest.conversation.id.encode()
    template = make_event(TEMPLATE_UPDATED, tenant_id=tenant, data=TemplateView(
        id=str(uuid.uuid4()), name="booking_confirmation", language="en", status="APPROVED", category="UTILITY"))
    for event in (message_event(tenant, guest, sent_at=T0 + timedelta(minutes=1)),
                  template,
                  read_event(tenant, guest.conversation.id, message_sent_at=T0 + timedelta(minutes=1)),
                  message_event(tenant, guest, sent_at=T0 + timedelta(minutes=4), body="one more thing")):
        await kafka.produce(harness.messaging_topic, event.to_bytes(), key=key)

    async def applied() -> conversation_pb2.Conversation | None:
        conversation = await get_conversation(harness, issuer, tenant, guest.conversation.id)
        return conversation if conversation.last_message_preview == "one more thing" else None

    conversation = await eventually(applied)
    assert conversation.unread_count == 1  # read down to 0, then the newer guest message
    dead = await kafka.read_all(dlq(harness.messaging_topic))
    assert [record for record in dead if record.key == key] == []  # the template event was no poison


# ---------------------------------------------------------------- outbound messages


async def test_an_outbound_message_never_changes_the_unread_count_or_the_window(harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    guest = await resolve(harness, issuer, tenant, at=T0, wa=wa_id())
    service = harness.app.service
    await service.apply_message_event(event=message_event(tenant, guest, sent_at=T0 + timedelta(minutes=1)))
    before = await stored(owner_db, tenant, guest.conversation.id)
    reply = message_event(tenant, guest, sent_at=T0 + timedelta(hours=23), event_type=MESSAGE_CREATED,
                          direction="outbound", body="Your room is ready")
    assert await service.apply_message_event(event=reply) is True
    after = await stored(owner_db, tenant, guest.conversation.id)
    assert (after["unread_count"], after["window_expires_at"], after["last_inbound_at"]) == (
        1, before["window_expires_at"], before["last_inbound_at"])
    assert after["window_expires_at"] == T0 + timedelta(minutes=1, hours=24)
    assert (after["last_message_at"], after["last_message_preview"]) == (T0 + timedelta(hours=23),
                                                                         "Your room is ready")
