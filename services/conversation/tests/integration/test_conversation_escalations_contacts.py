"""Escalations (open -> acknowledged -> resolved, or open -> resolved; nothing else) and contacts (search, keyset,
create with a unique phone, update), with their events, audit entries and tenant isolation."""

from __future__ import annotations

import json

import grpc
import pytest
from eva.conversation.v1 import conversation_pb2

pytestmark = pytest.mark.integration

AT = "2026-11-29T09:00:00Z"


async def events_of(kafka, topic: str, key: str, wanted: int) -> list[dict]:
    def matching(records) -> list[dict]:
        return [json.loads(r.value) for r in records if r.key == key.encode()]

    return matching(await kafka.wait_for(topic, lambda rs: len(matching(rs)) >= wanted))


async def test_the_escalation_state_machine(inbox, harness, kafka, rpc_error) -> None:
    tenant = inbox.new_tenant()
    guest = await inbox.guest(tenant, at=AT)
    conversation_id = guest.conversation.id
    agent, lead = inbox.user(tenant, user_id="agent-1"), inbox.user(tenant, role="admin", user_id="lead-1")

    raised = await inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="Guest asks for a refund", priority="high"), metadata=agent)
    assert (raised.status, raised.priority, raised.raised_by) == ("open", "high", "agent-1")
    for bad in (conversation_pb2.RaiseEscalationRequest(conversation_id=conversation_id, reason=""),
                conversation_pb2.RaiseEscalationRequest(conversation_id=conversation_id, reason="x" * 501),
                conversation_pb2.RaiseEscalationRequest(conversation_id=conversation_id, reason="r", priority="p1")):
        assert (await rpc_error(inbox.stub.RaiseEscalation(bad, metadata=agent)))[0] == \
            grpc.StatusCode.INVALID_ARGUMENT
    default = await inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="x" * 500), metadata=agent)
    assert default.priority == "normal"

    acknowledged = await inbox.stub.AcknowledgeEscalation(
        conversation_pb2.AcknowledgeEscalationRequest(escalation_id=raised.id), metadata=lead)
    assert (acknowledged.status, acknowledged.acknowledged_by) == ("acknowledged", "lead-1")
    assert acknowledged.acknowledged_at
    assert await rpc_error(inbox.stub.AcknowledgeEscalation(
        conversation_pb2.AcknowledgeEscalationRequest(escalation_id=raised.id), metadata=lead)) == \
        (grpc.StatusCode.FAILED_PRECONDITION, "ESCALATION_STATE")
    resolved = await inbox.stub.ResolveEscalation(
        conversation_pb2.ResolveEscalationRequest(escalation_id=raised.id, note="Refunded one night"), metadata=lead)
    assert (resolved.status, resolved.resolved_by, resolved.note) == ("resolved", "lead-1", "Refunded one night")
    for call in (inbox.stub.ResolveEscalation(conversation_pb2.ResolveEscalationRequest(escalation_id=raised.id),
                                              metadata=lead),
                 inbox.stub.AcknowledgeEscalation(
                     conversation_pb2.AcknowledgeEscalationRequest(escalation_id=raised.id), metadata=lead)):
        assert await rpc_error(call) == (grpc.StatusCode.FAILED_PRECONDITION, "ESCALATION_STATE")
    straight = await inbox.stub.ResolveEscalation(  # open -> resolved directly
        conversation_pb2.ResolveEscalationRequest(escalation_id=default.id), metadata=agent)
    assert straight.status == "resolved" and straight.acknowledged_by == ""

    # lists: newest first, filters, keyset
    third = await inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="Noise", priority="low"), metadata=agent)
    page = await inbox.stub.ListEscalations(conversation_pb2.ListEscalationsRequest(limit=2), metadata=agent)
    assert [e.id for e in page.items] == [third.id, default.id] and page.next_cursor
    rest = await inbox.stub.ListEscalations(conversation_pb2.ListEscalationsRequest(limit=2, cursor=page.next_cursor),
                                            metadata=agent)
    assert [e.id for e in rest.items] == [raised.id] and rest.next_cursor == ""
    open_only = await inbox.stub.ListEscalations(conversation_pb2.ListEscalationsRequest(status="open"),
                                                 metadata=agent)
    assert [e.id for e in open_only.items] == [third.id]
    by_conversation = await inbox.stub.ListEscalations(
        conversation_pb2.ListEscalationsRequest(conversation_id=conversation_id), metadata=agent)
    assert len(by_conversation.items) == 3

    stranger = inbox.user(inbox.new_tenant(), role="admin")
    foreign_list = await inbox.stub.ListEscalations(conversation_pb2.ListEscalationsRequest(), metadata=stranger)
    assert list(foreign_list.items) == []
    assert (await rpc_error(inbox.stub.ResolveEscalation(
        conversation_pb2.ResolveEscalationRequest(escalation_id=third.id), metadata=stranger)))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="x"), metadata=stranger)))[0] == grpc.StatusCode.NOT_FOUND
    assert await rpc_error(inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="x"), metadata=inbox.api_key(tenant, "conversations:read"))) == \
        (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")

    events = await events_of(kafka, harness.events_topic, conversation_id, 7)
    escalation_events = [(e["type"], e["data"]["status"]) for e in events if e["type"].startswith("escalation.")]
    assert escalation_events == [("escalation.raised", "open"), ("escalation.raised", "open"),
                                 ("escalation.updated", "acknowledged"), ("escalation.updated", "resolved"),
                                 ("escalation.updated", "resolved"), ("escalation.raised", "open")]
    audits = await events_of(kafka, harness.audit_topic, tenant, 6)
    assert [a["data"]["action"] for a in audits] == [
        "escalation.raised", "escalation.raised", "escalation.acknowledged", "escalation.resolved",
        "escalation.resolved", "escalation.raised"]


async def test_contacts_create_search_page_and_update(inbox, harness, kafka, rpc_error) -> None:
    tenant = inbox.new_tenant()
    agent = inbox.user(tenant)
    inbound = await inbox.guest(tenant, at=AT, name="Inbound Ingrid", wa_id="5511999990000")
    anna = await inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(name="Anna Schmidt",
                                                                                phone="4915100000001"), metadata=agent)
    assert (anna.name, anna.phone, anna.wa_id) == ("Anna Schmidt", "+4915100000001", "4915100000001")
    assert await rpc_error(inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(
        name="Dup", phone="+4915100000001"), metadata=agent)) == (grpc.StatusCode.ALREADY_EXISTS, "CONTACT_EXISTS")
    assert await rpc_error(inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(
        name="Ingrid again", phone="5511999990000"), metadata=agent)) == (grpc.StatusCode.ALREADY_EXISTS,
                                                                          "CONTACT_EXISTS")
    for bad in (conversation_pb2.CreateContactRequest(name="x", phone="12ab"),
                conversation_pb2.CreateContactRequest(name="x", phone="0123456789"),
                conversation_pb2.CreateContactRequest(name="", phone="4915100000009")):
        assert (await rpc_error(inbox.stub.CreateContact(bad, metadata=agent)))[0] == grpc.StatusCode.INVALID_ARGUMENT
    bert = await inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(name="Bert Schmidt",
                                                                                phone="4915100000002"), metadata=agent)
    # the same phone in another tenant is another contact
    await inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(name="Anna Schmidt", phone="4915100000001"),
                                   metadata=inbox.user(inbox.new_tenant()))

    async def search(q: str, limit: int = 0) -> list[str]:
        names: list[str] = []
        cursor = ""
        while True:
            page = await inbox.stub.ListContacts(conversation_pb2.ListContactsRequest(q=q, limit=limit, cursor=cursor),
                                                 metadata=agent)
            names.extend(c.name for c in page.items)
            if not page.next_cursor:
                return names
            cursor = page.next_cursor

    assert await search("") == ["Bert Schmidt", "Anna Schmidt", "Inbound Ingrid"]
    assert await search("", limit=1) == ["Bert Schmidt", "Anna Schmidt", "Inbound Ingrid"]
    assert await search("schmi") == ["Bert Schmidt", "Anna Schmidt"]
    assert await search("ANNA") == ["Anna Schmidt"]
    assert await search("+55119") == ["Inbound Ingrid"]
    assert await search("0000002") == ["Bert Schmidt"]
    assert await search("nobody") == []

    renamed = await inbox.stub.UpdateContact(conversation_pb2.UpdateContactRequest(contact_id=bert.id,
                                                                                   name="Bert Schmidt-Lee"),
                                             metadata=agent)
    assert renamed.name == "Bert Schmidt-Lee" and renamed.phone == "+4915100000002"
    moved = await inbox.stub.UpdateContact(conversation_pb2.UpdateContactRequest(contact_id=bert.id,
                                                                                 phone="4915100000003"),
                                           metadata=agent)
    assert (moved.phone, moved.wa_id) == ("+4915100000003", "4915100000003")
    assert await rpc_error(inbox.stub.UpdateContact(conversation_pb2.UpdateContactRequest(
        contact_id=bert.id, phone="4915100000001"), metadata=agent)) == (grpc.StatusCode.ALREADY_EXISTS,
                                                                         "CONTACT_EXISTS")
    assert (await rpc_error(inbox.stub.UpdateContact(conversation_pb2.UpdateContactRequest(
        contact_id=inbound.contact.id, name="x"), metadata=inbox.user(inbox.new_tenant()))))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert await rpc_error(inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(
        name="Key", phone="4915100000005"), metadata=inbox.api_key(tenant, "conversations:read"))) == \
        (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    listed = await inbox.stub.ListContacts(conversation_pb2.ListContactsRequest(q="anna"),
                                           metadata=inbox.api_key(tenant, "conversations:read"))
    assert [c.id for c in listed.items] == [anna.id]

    # a guest writing from a contact's number is that contact
    first_message = await inbox.guest(tenant, at=AT, name="Anna S.", wa_id="4915100000001")
    assert first_message.contact.id == anna.id and not first_message.contact_created

    bert_events = await events_of(kafka, harness.events_topic, bert.id, 3)
    assert [e["type"] for e in bert_events] == ["contact.created", "contact.updated", "contact.updated"]
    assert bert_events[-1]["data"]["phone"] == "+4915100000003"
    audits = await events_of(kafka, harness.audit_topic, tenant, 4)
    assert [a["data"]["action"] for a in audits] == ["contact.created", "contact.created", "contact.updated",
                                                     "contact.updated"]
    assert {a["data"]["targetType"] for a in audits} == {"contact"}


async def test_an_automation_key_with_conversations_write_escalates_and_manages_contacts(inbox, rpc_error) -> None:
    """n8n flows act through API keys: a conversations:write key raises and resolves escalations (recorded as the
    key's doing) and creates and updates contacts, like an attendant."""
    tenant = inbox.new_tenant()
    guest = await inbox.guest(tenant, at=AT)
    bot = inbox.api_key(tenant, "conversations:write")
    raised = await inbox.stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=guest.conversation.id, reason="Bot: guest asks for a human", priority="high"), metadata=bot)
    assert raised.status == "open" and raised.raised_by.startswith("apikey:")
    resolved = await inbox.stub.ResolveEscalation(
        conversation_pb2.ResolveEscalationRequest(escalation_id=raised.id, note="handed over"), metadata=bot)
    assert resolved.status == "resolved" and resolved.resolved_by == raised.raised_by
    contact = await inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(
        name="Booked by bot", phone="4915100000077"), metadata=bot)
    renamed = await inbox.stub.UpdateContact(conversation_pb2.UpdateContactRequest(
        contact_id=contact.id, name="Booked by the bot"), metadata=bot)
    assert renamed.name == "Booked by the bot"
    assert (await rpc_error(inbox.stub.CreateContact(conversation_pb2.CreateContactRequest(
        name="Other", phone="4915100000078"), metadata=inbox.api_key(inbox.new_tenant(), "conversations:read"))))[0] \
        == grpc.StatusCode.PERMISSION_DENIED
