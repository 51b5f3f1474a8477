"""ListConversations: latest activity first, every filter, keyset pages that neither repeat nor skip rows while new
conversations arrive, contact and tags on each item, and the last-message fields kept from messaging events."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from eva.conversation.v1 import conversation_pb2
from eva_common.timefmt import rfc3339
from eva_events.envelope import make_event
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, MessageView

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return rfc3339(T0 + timedelta(minutes=minutes))


async def list_all(inbox, metadata, **filters) -> list[conversation_pb2.Conversation]:
    """Every page of a listing, following next_cursor."""
    items: list[conversation_pb2.Conversation] = []
    cursor = ""
    for _ in range(100):
        page = await inbox.stub.ListConversations(
            conversation_pb2.ListConversationsRequest(cursor=cursor, **filters), metadata=metadata)
        items.extend(page.items)
        if not page.next_cursor:
            return items
        cursor = page.next_cursor
    raise AssertionError("the listing never ended")


async def test_the_inbox_is_sorted_by_last_activity_and_pages_by_keyset(inbox) -> None:
    tenant = inbox.new_tenant()
    made = [await inbox.guest(tenant, at=at(i), name=f"Guest {i}") for i in range(7)]
    other_tenant = inbox.new_tenant()
    await inbox.guest(other_tenant, at=at(100), name="Someone else")
    user = inbox.user(tenant)

    first = await inbox.stub.ListConversations(conversation_pb2.ListConversationsRequest(limit=3), metadata=user)
    assert [c.contact.name for c in first.items] == ["Guest 6", "Guest 5", "Guest 4"]
    assert first.next_cursor
    everything = await list_all(inbox, user, limit=3)
    assert [c.id for c in everything] == [m.conversation.id for m in reversed(made)]  # nothing from the other tenant
    assert all(c.contact.id == m.contact.id for c, m in zip(everything, reversed(made), strict=True))


async def test_pages_neither_repeat_nor_skip_while_new_conversations_arrive(inbox) -> None:
    tenant = inbox.new_tenant()
    made = [await inbox.guest(tenant, at=at(i)) for i in range(10)]
    user = inbox.user(tenant)
    seen: list[str] = []
    cursor = ""
    arrivals = 0
    while True:
        page = await inbox.stub.ListConversations(
            conversation_pb2.ListConversationsRequest(limit=3, cursor=cursor), metadata=user)
        seen.extend(c.id for c in page.items)
        await inbox.guest(tenant, at=at(1000 + arrivals))  # newer than everything: sorts before the cursor
        arrivals += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert seen == [m.conversation.id for m in reversed(made)]


async def test_filters_status_assignee_unassigned_tag_text_and_updated_since(inbox, harness) -> None:
    tenant = inbox.new_tenant()
    admin = inbox.user(tenant, role="admin")
    agent = harness.auth.add_user(tenant_id=tenant)
    maria = await inbox.guest(tenant, at=at(1), name="María Ñúñez")
    bob = await inbox.guest(tenant, at=at(2), name="Bob Stone", wa_id="4915112345678")
    carl = await inbox.guest(tenant, at=at(3), name="Carl 100%_sure")
    await inbox.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=bob.conversation.id, status="pending"),
        metadata=admin)
    await inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=maria.conversation.id, attendant_id=agent),
        metadata=admin)
    vip = await inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="VIP", color="#FFAA00"), metadata=admin)
    await inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(conversation_id=carl.conversation.id, tag_id=vip.id),
                               metadata=admin)

    async def ids(**filters) -> list[str]:
        return [c.id for c in await list_all(inbox, admin, **filters)]

    assert await ids(status="pending") == [bob.conversation.id]
    assert await ids(status="open") == [carl.conversation.id, maria.conversation.id]
    assert await ids(assigned_to=agent) == [maria.conversation.id]
    assert await ids(unassigned=True) == [carl.conversation.id, bob.conversation.id]
    assert await ids(tag=vip.id) == [carl.conversation.id]
    assert await ids(tag="vip") == [carl.conversation.id]  # by name, any case
    assert await ids(tag="no such tag") == []
    assert await ids(q="maría") == [maria.conversation.id]  # name, case-insensitive
    assert await ids(q="ÑÚÑ") == [maria.conversation.id]
    assert await ids(q="12345") == [bob.conversation.id]  # phone
    assert await ids(q="+4915112") == [bob.conversation.id]
    assert await ids(q="100%_") == [carl.conversation.id]  # LIKE wildcards are literal
    assert await ids(q="%") == [carl.conversation.id]  # only the name that has one
    assert await ids(q="B_b") == []  # "_" is not "any character"
    assert await ids(status="open", unassigned=True) == [carl.conversation.id]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await ids(updated_since=future) == []
    assert len(await ids(updated_since="2020-01-01T00:00:00Z")) == 3

    listed = {c.id: c for c in await list_all(inbox, admin)}
    assert [t.name for t in listed[carl.conversation.id].tags] == ["VIP"]
    assert listed[carl.conversation.id].tags[0].color == "#ffaa00"
    assert listed[maria.conversation.id].assigned_to == agent


async def test_a_tags_pages_follow_last_activity_not_creation_or_tagging_order(inbox, harness, kafka,
                                                                              eventually) -> None:
    tenant = inbox.new_tenant()
    admin = inbox.user(tenant, role="admin")
    made = {minute: await inbox.guest(tenant, at=at(minute)) for minute in (5, 1, 4, 2, 3)}  # created out of order
    untagged = await inbox.guest(tenant, at=at(10))
    vip = await inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="vip", color="#ff0000"), metadata=admin)
    for minute in (3, 1, 5, 2, 4):  # tagged in yet another order
        await inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(
            conversation_id=made[minute].conversation.id, tag_id=vip.id), metadata=admin)
    listed = [c.id for c in await list_all(inbox, admin, tag=vip.id, limit=2)]
    assert listed == [made[minute].conversation.id for minute in (5, 4, 3, 2, 1)]
    assert untagged.conversation.id not in listed
    # a new message on the oldest one moves it to the top of the tag's list too
    await kafka.produce(harness.messaging_topic, message(made[1], sent_at=T0 + timedelta(minutes=20), type_="text",
                                                         content={"body": "hello again"}),
                        key=made[1].conversation.id.encode())

    async def moved() -> list[str] | None:
        listed = [c.id for c in await list_all(inbox, admin, tag=vip.id, limit=2)]
        return listed if listed[0] == made[1].conversation.id else None

    assert await eventually(moved) == [made[minute].conversation.id for minute in (1, 5, 4, 3, 2)]


async def test_a_broad_search_and_a_selective_one_give_the_same_pages(inbox, monkeypatch) -> None:
    from conversation_service import repository

    tenant = inbox.new_tenant()
    admin = inbox.user(tenant)
    annas = [await inbox.guest(tenant, at=at(minute), name=f"Anna {minute}") for minute in (3, 1, 2)]
    await inbox.guest(tenant, at=at(4), name="Bruno")
    expected = [annas[0].conversation.id, annas[2].conversation.id, annas[1].conversation.id]
    selective = [c.id for c in await list_all(inbox, admin, q="anna", limit=2)]
    monkeypatch.setattr(repository, "SELECTIVE_SEARCH_MAX", 1)  # three matches are now "broad"
    broad = [c.id for c in await list_all(inbox, admin, q="anna", limit=2)]
    assert selective == broad == expected
    assert [c.id for c in await list_all(inbox, admin, q="nobody")] == []


async def test_bad_list_arguments_are_invalid(inbox, rpc_error) -> None:
    user = inbox.user(inbox.new_tenant())
    for request in (conversation_pb2.ListConversationsRequest(cursor="not-a-cursor"),
                    conversation_pb2.ListConversationsRequest(status="closed"),
                    conversation_pb2.ListConversationsRequest(updated_since="yesterday"),
                    conversation_pb2.ListConversationsRequest(limit=-1),
                    conversation_pb2.ListConversationsRequest(limit=101)):
        status, _ = await rpc_error(inbox.stub.ListConversations(request, metadata=user))
        assert status == grpc.StatusCode.INVALID_ARGUMENT


async def test_api_keys_list_with_the_read_scope_only(inbox, rpc_error) -> None:
    tenant = inbox.new_tenant()
    made = await inbox.guest(tenant, at=at(1))
    page = await inbox.stub.ListConversations(conversation_pb2.ListConversationsRequest(),
                                              metadata=inbox.api_key(tenant, "conversations:read"))
    assert [c.id for c in page.items] == [made.conversation.id]
    status, code = await rpc_error(inbox.stub.ListConversations(
        conversation_pb2.ListConversationsRequest(), metadata=inbox.api_key(tenant, "messages:read")))
    assert (status, code) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")


def message(resolved, *, sent_at: datetime, type_: str, content: dict, direction: str = "inbound") -> bytes:
    view = MessageView(
        id=str(uuid.uuid4()), conversation_id=resolved.conversation.id, contact_id=resolved.contact.id,
        wamid=f"wamid.{secrets.token_hex(8)}", direction=direction, type=type_,
        status="RECEIVED" if direction == "inbound" else "PENDING", content=content, sent_at=sent_at,
        created_at=sent_at)
    event_type = MESSAGE_RECEIVED if direction == "inbound" else MESSAGE_CREATED
    return make_event(event_type, tenant_id=resolved.conversation.tenant_id, data=view).to_bytes()


async def test_the_last_message_preview_follows_the_latest_message(inbox, harness, kafka, eventually) -> None:
    tenant = inbox.new_tenant()
    resolved = await inbox.guest(tenant, at=at(0))
    key = resolved.conversation.id.encode()
    long_text = "ü" * 130
    await kafka.produce(harness.messaging_topic, message(resolved, sent_at=T0 + timedelta(minutes=1), type_="text",
                                                         content={"body": long_text}), key=key)
    await kafka.produce(harness.messaging_topic, message(resolved, sent_at=T0 + timedelta(minutes=2), type_="image",
                                                         content={"id": "m1", "caption": "pool"}), key=key)
    # an older message arriving late moves nothing
    await kafka.produce(harness.messaging_topic, message(resolved, sent_at=T0 + timedelta(seconds=30), type_="text",
                                                         content={"body": "late"}), key=key)
    user = inbox.user(tenant)

    async def applied() -> conversation_pb2.Conversation | None:
        conversation = await inbox.stub.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=resolved.conversation.id), metadata=user)
        return conversation if conversation.unread_count == 3 else None

    conversation = await eventually(applied)
    assert conversation.last_message_preview == "[image]"
    assert conversation.last_message_at == at(2) and conversation.last_inbound_at == at(2)
    assert conversation.window_expires_at == rfc3339(T0 + timedelta(hours=24, minutes=2))

    await kafka.produce(harness.messaging_topic, message(resolved, sent_at=T0 + timedelta(minutes=3), type_="text",
                                                         content={"body": long_text}, direction="outbound"), key=key)

    async def replied() -> conversation_pb2.Conversation | None:
        conversation = await inbox.stub.GetConversation(
            conversation_pb2.GetConversationRequest(conversation_id=resolved.conversation.id), metadata=user)
        return conversation if conversation.last_message_at == at(3) else None

    conversation = await eventually(replied)
    assert conversation.last_message_preview == "ü" * 120
    assert conversation.last_inbound_at == at(2) and conversation.unread_count == 3  # outbound: no unread, no window
