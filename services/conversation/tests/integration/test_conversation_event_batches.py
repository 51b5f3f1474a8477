"""Messaging's events applied a fetch at a time (ConversationService.apply_message_events) on the real database: each
event once (the inbox claim holds inside a batch and across batches), one `conversation.updated` per changed
conversation per batch carrying its state after the whole batch, a read in the same batch as the messages it reads,
and the events of two tenants each applied under its own tenant."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eva.conversation.v1 import conversation_pb2
from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import MESSAGE_READ, MESSAGE_RECEIVED, MessagesRead, MessageView, SenderView

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def new_conversation(harness: Any, issuer: Any, tenant_id: str) -> conversation_pb2.ResolveInboundContactResponse:
    wa_id = "3519" + str(secrets.randbelow(10**8)).zfill(8)
    resolved: conversation_pb2.ResolveInboundContactResponse = await harness.stub.ResolveInboundContact(
        conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant_id, wa_id=wa_id, profile_name="Guest",
                                                      message_at=T0.isoformat(), phone_number_id="106540352242922"),
        metadata=auth(issuer.service_token(service="messaging")))
    return resolved


def received(tenant_id: str, resolved: conversation_pb2.ResolveInboundContactResponse, *, minutes: int,
             body: str) -> EventEnvelope:
    sent_at = T0 + timedelta(minutes=minutes)
    view = MessageView(
        id=str(uuid.uuid4()), conversation_id=resolved.conversation.id, contact_id=resolved.contact.id,
        wamid=f"wamid.{secrets.token_hex(8)}", direction="inbound", type="text", status="RECEIVED",
        content={"body": body}, sent_at=sent_at, created_at=sent_at)
    return make_event(MESSAGE_RECEIVED, tenant_id=tenant_id, data=view)


def read(tenant_id: str, conversation_id: str, *, minutes: int) -> EventEnvelope:
    data = MessagesRead(conversation_id=conversation_id, message_id=str(uuid.uuid4()),
                        message_sent_at=T0 + timedelta(minutes=minutes), read_at=T0 + timedelta(hours=1),
                        read_by=SenderView(kind="user", id="u-1", name="Ana"), marked=2)
    return make_event(MESSAGE_READ, tenant_id=tenant_id, data=data)


async def updates(owner_db: Any, harness: Any, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's `conversation.updated` events in the outbox, oldest first."""
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows = await owner_db.fetch("SELECT payload FROM outbox WHERE tenant_id = $1 AND topic = $2 "
                                    "AND headers->>'event-type' = 'conversation.updated' ORDER BY id",
                                    tenant_id, harness.events_topic)
    return [json.loads(bytes(row["payload"])) for row in rows]


async def stored(owner_db: Any, tenant_id: str, conversation_id: str) -> Any:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        return await owner_db.fetchrow("SELECT unread_count, last_message_at, last_message_preview, window_expires_at "
                                       "FROM conversations WHERE id = $1", uuid.UUID(conversation_id))


async def test_a_burst_is_applied_once_and_announced_once_per_conversation_with_its_final_state(
        harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    busy, quiet = await new_conversation(harness, issuer, tenant), await new_conversation(harness, issuer, tenant)
    first = received(tenant, busy, minutes=1, body="first")
    batch = [
        first,
        received(tenant, quiet, minutes=2, body="only one"),
        received(tenant, busy, minutes=5, body="the latest"),
        first,  # redelivered inside the batch: once
        received(tenant, busy, minutes=3, body="late arrival"),  # older than the latest: not the preview
    ]
    service = harness.app.service

    assert await service.apply_message_events(batch) == 4

    busy_row, quiet_row = await stored(owner_db, tenant, busy.conversation.id), await stored(
        owner_db, tenant, quiet.conversation.id)
    assert (busy_row["unread_count"], busy_row["last_message_preview"], busy_row["last_message_at"]) == (
        3, "the latest", T0 + timedelta(minutes=5))
    assert busy_row["window_expires_at"] == T0 + timedelta(minutes=5, hours=24)
    assert (quiet_row["unread_count"], quiet_row["last_message_preview"]) == (1, "only one")
    announced = await updates(owner_db, harness, tenant)
    assert sorted((event["data"]["id"], event["data"]["unreadCount"], event["data"]["lastMessagePreview"])
                  for event in announced) == sorted([(busy.conversation.id, 3, "the latest"),
                                                     (quiet.conversation.id, 1, "only one")])
    busy_update = next(event for event in announced if event["data"]["id"] == busy.conversation.id)
    assert busy_update["data"]["lastMessageAt"].startswith("2026-12-06T09:05:00")
    assert busy_update["tenantId"] == tenant and busy_update["data"]["contact"]["id"] == busy.contact.id

    assert await service.apply_message_events(batch) == 0  # the same fetch again: every event claimed already
    assert await service.apply_message_event(event=first) is False
    assert (await stored(owner_db, tenant, busy.conversation.id))["unread_count"] == 3
    assert len(await updates(owner_db, harness, tenant)) == 2  # nothing new announced


async def test_a_read_after_the_messages_in_the_same_batch_is_announced_once_with_nothing_unread(
        harness, issuer, owner_db) -> None:
    tenant = str(uuid.uuid4())
    guest = await new_conversation(harness, issuer, tenant)
    conversation_id = guest.conversation.id

    applied = await harness.app.service.apply_message_events([
        received(tenant, guest, minutes=1, body="hello"), received(tenant, guest, minutes=2, body="anyone?"),
        read(tenant, conversation_id, minutes=2)])

    assert applied == 3
    row = await stored(owner_db, tenant, conversation_id)
    assert (row["unread_count"], row["last_message_preview"]) == (0, "anyone?")
    [announced] = await updates(owner_db, harness, tenant)
    assert (announced["data"]["id"], announced["data"]["unreadCount"]) == (conversation_id, 0)
    assert announced["data"]["lastMessagePreview"] == "anyone?"


async def test_the_events_of_two_tenants_apply_each_under_its_own_tenant(harness, issuer, owner_db) -> None:
    first_tenant, second_tenant = str(uuid.uuid4()), str(uuid.uuid4())
    ours, theirs = (await new_conversation(harness, issuer, first_tenant),
                    await new_conversation(harness, issuer, second_tenant))
    foreign = received(second_tenant, ours, minutes=9, body="not yours")  # names the first tenant's conversation

    applied = await harness.app.service.apply_message_events([
        received(first_tenant, ours, minutes=1, body="a1"), received(second_tenant, theirs, minutes=1, body="b1"),
        foreign, received(second_tenant, theirs, minutes=2, body="b2"),
        received(first_tenant, ours, minutes=3, body="a2")])

    assert applied == 4  # the other tenant's event changes nothing
    ours_row, theirs_row = (await stored(owner_db, first_tenant, ours.conversation.id),
                            await stored(owner_db, second_tenant, theirs.conversation.id))
    assert (ours_row["unread_count"], ours_row["last_message_preview"]) == (2, "a2")
    assert (theirs_row["unread_count"], theirs_row["last_message_preview"]) == (2, "b2")
    for tenant, resolved, preview in ((first_tenant, ours, "a2"), (second_tenant, theirs, "b2")):
        [announced] = await updates(owner_db, harness, tenant)
        assert announced["tenantId"] == tenant
        assert (announced["data"]["id"], announced["data"]["unreadCount"], announced["data"]["lastMessagePreview"]) \
            == (resolved.conversation.id, 2, preview)
