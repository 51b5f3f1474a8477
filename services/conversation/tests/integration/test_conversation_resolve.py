"""ResolveInboundContact over a real grpc.aio server, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import asyncpg
import grpc
import pytest
from eva.conversation.v1 import conversation_pb2
from eva_common.errors import ERROR_CODE_METADATA_KEY
from eva_testing.tokens import TestTokenIssuer

pytestmark = pytest.mark.integration

PHONE_NUMBER_ID = "106540352242922"


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def new_tenant() -> str:
    return str(uuid.uuid4())


def new_wa_id() -> str:
    return "1650555" + str(secrets.randbelow(10**6)).zfill(6)


def request(tenant_id: str, *, wa_id: str = "", user_id: str = "", name: str = "Sheena Nelson",
            at: str = "2026-11-29T10:00:00Z") -> conversation_pb2.ResolveInboundContactRequest:
    return conversation_pb2.ResolveInboundContactRequest(
        tenant_id=tenant_id, wa_id=wa_id, user_id=user_id, profile_name=name, message_at=at,
        phone_number_id=PHONE_NUMBER_ID)


async def resolve(harness: Any, issuer: TestTokenIssuer,
                  req: conversation_pb2.ResolveInboundContactRequest) -> conversation_pb2.ResolveInboundContactResponse:
    response: conversation_pb2.ResolveInboundContactResponse = await harness.stub.ResolveInboundContact(
        req, metadata=auth(issuer.service_token(service="messaging")))
    return response


def error_code(error: grpc.aio.AioRpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(ERROR_CODE_METADATA_KEY)


async def count(owner_db: asyncpg.Connection, tenant_id: str, sql: str, *args: Any) -> int:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        value: int = await owner_db.fetchval(sql, *args)
    return value


async def test_a_new_guest_gets_a_contact_and_an_open_conversation_announced_once(harness, issuer, kafka) -> None:
    tenant, wa_id = new_tenant(), new_wa_id()
    response = await resolve(harness, issuer, request(tenant, wa_id=wa_id, user_id="US.13491208655302741918"))

    assert response.contact_created and response.conversation_created
    contact, conversation = response.contact, response.conversation
    assert (contact.tenant_id, contact.wa_id, contact.user_id) == (tenant, wa_id, "US.13491208655302741918")
    assert (contact.name, contact.phone) == ("Sheena Nelson", f"+{wa_id}")
    assert (conversation.status, conversation.priority, conversation.unread_count) == ("open", "normal", 0)
    assert conversation.contact_id == contact.id and conversation.contact.id == contact.id
    assert conversation.last_message_at == "2026-11-29T10:00:00.000Z"
    assert conversation.window_expires_at == "2026-11-30T10:00:00.000Z"
    assert conversation.phone_number_id == PHONE_NUMBER_ID

    records = await kafka.wait_for(harness.events_topic,
                                   lambda rs: any(r.key == conversation.id.encode() for r in rs))
    mine = [r for r in records if r.key == conversation.id.encode()]
    assert len(mine) == 1
    event = json.loads(mine[0].value)
    assert dict(mine[0].headers)["event-type"] == b"conversation.created"
    assert event["type"] == "conversation.created" and event["tenantId"] == tenant
    data = event["data"]
    assert data["id"] == conversation.id and data["contactId"] == contact.id and data["status"] == "open"
    assert data["unreadCount"] == 0 and data["windowExpiresAt"].startswith("2026-11-30T10:00:00")
    assert data["contact"]["waId"] == wa_id and data["contact"]["name"] == "Sheena Nelson"
    assert data["contact"]["userId"] == "US.13491208655302741918"


async def test_the_same_guest_keeps_contact_and_conversation_and_the_window_only_grows(
        harness, issuer, owner_db) -> None:
    tenant, wa_id = new_tenant(), new_wa_id()
    first = await resolve(harness, issuer, request(tenant, wa_id=wa_id, at="2026-11-29T10:00:00Z"))
    later = await resolve(harness, issuer, request(tenant, wa_id=wa_id, name="Sheena N.", at="2026-11-29T11:30:00Z"))
    older = await resolve(harness, issuer, request(tenant, wa_id=wa_id, name="", at="2026-11-29T05:00:00Z"))

    assert not later.contact_created and not later.conversation_created
    assert later.contact.id == first.contact.id and later.conversation.id == first.conversation.id
    assert later.contact.name == "Sheena N."  # Meta sent a new profile name
    assert later.conversation.window_expires_at == "2026-11-30T11:30:00.000Z"
    assert older.contact.name == "Sheena N."  # no name: keep the one we have
    assert older.conversation.window_expires_at == "2026-11-30T11:30:00.000Z"  # max(existing, message_at + 24 h)
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations") == 1
    assert await count(owner_db, tenant, "SELECT count(*) FROM contacts WHERE tenant_id = $1", tenant) == 1


async def test_concurrent_calls_for_a_new_guest_make_one_contact_and_one_conversation(
        harness, issuer, owner_db) -> None:
    tenant, wa_id = new_tenant(), new_wa_id()
    responses = await asyncio.gather(*(resolve(harness, issuer, request(tenant, wa_id=wa_id)) for _ in range(8)))

    assert len({r.contact.id for r in responses}) == 1
    assert len({r.conversation.id for r in responses}) == 1
    assert sum(r.contact_created for r in responses) == 1
    assert sum(r.conversation_created for r in responses) == 1
    assert await count(owner_db, tenant, "SELECT count(*) FROM contacts WHERE tenant_id = $1", tenant) == 1
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations") == 1
    created_events = await count(
        owner_db, tenant,
        "SELECT count(*) FROM outbox WHERE msg_key = $1 AND headers->>'event-type' = 'conversation.created'",
        responses[0].conversation.id)
    assert created_events == 1


async def test_concurrent_calls_for_a_bsuid_only_guest_make_one_contact(harness, issuer, owner_db) -> None:
    tenant, user_id = new_tenant(), f"US.{secrets.randbelow(10**18)}"
    responses = await asyncio.gather(*(resolve(harness, issuer, request(tenant, user_id=user_id)) for _ in range(6)))
    assert len({r.contact.id for r in responses}) == 1 and len({r.conversation.id for r in responses}) == 1
    assert await count(owner_db, tenant, "SELECT count(*) FROM contacts WHERE tenant_id = $1", tenant) == 1


async def test_a_bsuid_only_contact_gets_its_wa_id_when_meta_sends_it(harness, issuer) -> None:
    tenant, wa_id, user_id = new_tenant(), new_wa_id(), f"US.{secrets.randbelow(10**18)}"
    first = await resolve(harness, issuer, request(tenant, user_id=user_id, name="@sheena"))
    assert first.contact.wa_id == "" and first.contact.user_id == user_id and first.contact.phone == ""

    second = await resolve(harness, issuer, request(tenant, wa_id=wa_id, user_id=user_id))
    assert second.contact.id == first.contact.id and not second.contact_created
    assert (second.contact.wa_id, second.contact.phone) == (wa_id, f"+{wa_id}")
    assert second.conversation.id == first.conversation.id


async def test_a_wa_id_contact_gets_its_user_id_when_meta_sends_it(harness, issuer) -> None:
    tenant, wa_id, user_id = new_tenant(), new_wa_id(), f"US.{secrets.randbelow(10**18)}"
    first = await resolve(harness, issuer, request(tenant, wa_id=wa_id))
    second = await resolve(harness, issuer, request(tenant, wa_id=wa_id, user_id=user_id))
    third = await resolve(harness, issuer, request(tenant, user_id=user_id))  # a later message with the BSUID only
    assert first.contact.user_id == ""
    assert second.contact.id == first.contact.id == third.contact.id
    assert second.contact.user_id == user_id


async def test_a_resolved_conversation_is_reopened_by_the_guests_next_message(harness, issuer, owner_db) -> None:
    tenant, wa_id = new_tenant(), new_wa_id()
    first = await resolve(harness, issuer, request(tenant, wa_id=wa_id))
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await owner_db.execute("UPDATE conversations SET status = 'resolved' WHERE id = $1",
                               uuid.UUID(first.conversation.id))

    second = await resolve(harness, issuer, request(tenant, wa_id=wa_id, at="2026-11-29T12:00:00Z"))
    assert not second.conversation_created and not second.contact_created
    assert second.conversation.id == first.conversation.id and second.contact.id == first.contact.id
    assert second.conversation.status == "open"
    assert second.conversation.window_expires_at == "2026-11-30T12:00:00.000Z"
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations") == 1
    reopened_events = await count(
        owner_db, tenant,
        "SELECT count(*) FROM outbox WHERE msg_key = $1 AND headers->>'event-type' = 'conversation.updated'",
        first.conversation.id)
    assert reopened_events == 1


async def test_concurrent_messages_reopen_a_resolved_conversation_once(harness, issuer, owner_db) -> None:
    tenant, wa_id = new_tenant(), new_wa_id()
    first = await resolve(harness, issuer, request(tenant, wa_id=wa_id))
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await owner_db.execute("UPDATE conversations SET status = 'resolved' WHERE id = $1",
                               uuid.UUID(first.conversation.id))
    responses = await asyncio.gather(*(resolve(harness, issuer, request(tenant, wa_id=wa_id)) for _ in range(6)))
    assert {r.conversation.id for r in responses} == {first.conversation.id}
    assert all(r.conversation.status == "open" and not r.conversation_created for r in responses)
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations") == 1


async def test_two_guests_get_two_contacts_and_two_conversations(harness, issuer) -> None:
    tenant = new_tenant()
    one, two = await asyncio.gather(resolve(harness, issuer, request(tenant, wa_id=new_wa_id())),
                                    resolve(harness, issuer, request(tenant, wa_id=new_wa_id())))
    assert one.contact.id != two.contact.id and one.conversation.id != two.conversation.id
    assert one.conversation_created and two.conversation_created


async def test_the_same_wa_id_in_two_tenants_is_two_contacts(harness, issuer) -> None:
    wa_id = new_wa_id()
    one = await resolve(harness, issuer, request(new_tenant(), wa_id=wa_id))
    two = await resolve(harness, issuer, request(new_tenant(), wa_id=wa_id))
    assert one.contact.id != two.contact.id and two.contact_created


async def test_only_services_resolve_contacts_and_they_must_name_a_tenant(harness, issuer) -> None:
    tenant = new_tenant()
    cases = [
        (auth(issuer.user_token(user_id="u1", tenant_id=tenant)), request(tenant, wa_id=new_wa_id()),
         grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY"),
        (auth(issuer.service_token(service="messaging")), request("", wa_id=new_wa_id()),
         grpc.StatusCode.PERMISSION_DENIED, "TENANT_REQUIRED"),
        ((), request(tenant, wa_id=new_wa_id()), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (auth(TestTokenIssuer().service_token()), request(tenant, wa_id=new_wa_id()),
         grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
        (auth(issuer.service_token()), request(tenant), grpc.StatusCode.INVALID_ARGUMENT, "CONTACT_ID_REQUIRED"),
        (auth(issuer.service_token()), request(tenant, wa_id=new_wa_id(), at="yesterday"),
         grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED"),
    ]
    for metadata, req, status, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await harness.stub.ResolveInboundContact(req, metadata=metadata)
        assert (raised.value.code(), error_code(raised.value)) == (status, code)


async def test_several_guests_resolve_in_one_call_in_the_order_asked(harness, issuer, owner_db, rpc_error) -> None:
    """ResolveInboundContacts (a batch of webhook deliveries): one answer per guest in the order asked; a known
    guest keeps their contact and conversation, new guests get theirs; one tenant per call, at most 500."""
    tenant = new_tenant()
    known = await resolve(harness, issuer, request(tenant, wa_id=new_wa_id(), at="2026-11-29T10:00:00Z"))
    fresh = [new_wa_id(), new_wa_id()]
    batch = conversation_pb2.ResolveInboundContactsRequest(contacts=[
        request(tenant, wa_id=fresh[0], at="2026-11-29T11:00:00Z"),
        request(tenant, wa_id=known.contact.wa_id, at="2026-11-29T12:00:00Z"),
        request(tenant, wa_id=fresh[1], at="2026-11-29T11:30:00Z"),
    ])
    token = auth(issuer.service_token(service="messaging"))
    answers = (await harness.stub.ResolveInboundContacts(batch, metadata=token)).contacts

    assert [a.contact.wa_id for a in answers] == [fresh[0], known.contact.wa_id, fresh[1]]
    assert [a.contact_created for a in answers] == [True, False, True]
    assert answers[1].conversation.id == known.conversation.id and not answers[1].conversation_created
    assert answers[1].conversation.window_expires_at.startswith("2026-11-30T12:00:00")  # extended to the latest
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations WHERE tenant_id = $1", tenant) == 3

    mixed = conversation_pb2.ResolveInboundContactsRequest(contacts=[
        request(tenant, wa_id=new_wa_id()), request(new_tenant(), wa_id=new_wa_id())])
    assert await rpc_error(harness.stub.ResolveInboundContacts(mixed, metadata=token)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ONE_TENANT_PER_CALL")
    too_many = conversation_pb2.ResolveInboundContactsRequest(
        contacts=[request(tenant, wa_id=new_wa_id()) for _ in range(501)])
    assert await rpc_error(harness.stub.ResolveInboundContacts(too_many, metadata=token)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_CONTACTS")
    # the refused calls wrote nothing
    assert await count(owner_db, tenant, "SELECT count(*) FROM contacts WHERE tenant_id = $1", tenant) == 3


async def test_one_call_reopens_a_resolved_guest_renames_a_known_one_and_resolves_a_repeated_one_alike(
    harness, issuer, owner_db
) -> None:
    """In one ResolveInboundContacts call (the batch's known contacts read in one query, each conversation opened in
    one statement): a guest whose conversation was resolved gets it back, announced once; a known guest's new
    profile name is kept; the same guest named twice gets the same contact and conversation both times."""
    tenant = new_tenant()
    token = auth(issuer.service_token(service="messaging"))
    resolved = await resolve(harness, issuer, request(tenant, wa_id=new_wa_id()))
    renamed = await resolve(harness, issuer, request(tenant, wa_id=new_wa_id(), name="Old Name"))
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await owner_db.execute("UPDATE conversations SET status = 'resolved' WHERE id = $1",
                               uuid.UUID(resolved.conversation.id))
    batch = conversation_pb2.ResolveInboundContactsRequest(contacts=[
        request(tenant, wa_id=resolved.contact.wa_id, at="2026-11-29T12:00:00Z"),
        request(tenant, wa_id=renamed.contact.wa_id, name="New Name", at="2026-11-29T12:00:00Z"),
        request(tenant, wa_id=renamed.contact.wa_id, name="New Name", at="2026-11-29T12:05:00Z"),
    ])
    answers = (await harness.stub.ResolveInboundContacts(batch, metadata=token)).contacts

    assert answers[0].conversation.id == resolved.conversation.id and answers[0].conversation.status == "open"
    assert not any(a.conversation_created or a.contact_created for a in answers)
    assert answers[1].contact.name == answers[2].contact.name == "New Name"
    assert answers[1].contact.id == answers[2].contact.id == renamed.contact.id
    assert answers[1].conversation.id == answers[2].conversation.id == renamed.conversation.id
    assert answers[2].conversation.window_expires_at.startswith("2026-11-30T12:05:00")
    assert await count(owner_db, tenant, "SELECT count(*) FROM conversations") == 2
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        assert await owner_db.fetchval("SELECT name FROM contacts WHERE id = $1",
                                       uuid.UUID(renamed.contact.id)) == "New Name"
    assert await count(
        owner_db, tenant,
        "SELECT count(*) FROM outbox WHERE msg_key = $1 AND headers->>'event-type' = 'conversation.updated'",
        resolved.conversation.id) == 1


async def test_a_batch_takes_its_guests_conversations_in_id_order_so_it_never_deadlocks_with_the_events_consumer(
    harness, issuer, owner_db
) -> None:
    """The messaging events' consumer updates a batch's conversations in id order; ResolveInboundContacts locks its
    known guests' open conversations first, in the same order. Here a transaction holds the lower conversation (as
    the consumer would) while a call names the higher one's guest first: the call waits on the lower one without
    having taken the higher, so the transaction can still take the higher one (it never waits: lock_timeout) and
    both finish."""
    tenant = new_tenant()
    token = auth(issuer.service_token(service="messaging"))
    guests = [await resolve(harness, issuer, request(tenant, wa_id=new_wa_id())) for _ in range(2)]
    low, high = sorted(guests, key=lambda guest: uuid.UUID(guest.conversation.id))
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await owner_db.execute("SET LOCAL lock_timeout = '300ms'")
        await owner_db.execute("UPDATE conversations SET unread_count = unread_count + 1 WHERE id = $1",
                               uuid.UUID(low.conversation.id))
        call = asyncio.ensure_future(harness.stub.ResolveInboundContacts(
            conversation_pb2.ResolveInboundContactsRequest(
                contacts=[request(tenant, wa_id=high.contact.wa_id), request(tenant, wa_id=low.contact.wa_id)]),
            metadata=token))
        await asyncio.sleep(0.5)  # the call reaches the lock it waits for
        assert not call.done()
        await owner_db.execute("UPDATE conversations SET unread_count = unread_count + 1 WHERE id = $1",
                               uuid.UUID(high.conversation.id))  # would wait for the call, and time out, otherwise
    answers = (await asyncio.wait_for(call, 10)).contacts
    assert [a.conversation.id for a in answers] == [high.conversation.id, low.conversation.id]
