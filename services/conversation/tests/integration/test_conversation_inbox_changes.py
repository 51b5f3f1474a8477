"""UpdateConversation, AssignConversation and tags: who may do what, the rules, the events on
conversation.events.v1 and the audit entries on audit.events.v1 (both through the outbox), and tenant isolation."""

from __future__ import annotations

import json

import grpc
import pytest
from eva.conversation.v1 import conversation_pb2

pytestmark = pytest.mark.integration

AT = "2026-11-29T09:00:00Z"


async def events_of(kafka, topic: str, key: str, wanted: int, event_type: str | None = None) -> list[dict]:
    """The JSON envelopes under `key` (of `event_type`), once at least `wanted` of them are on the topic."""
    def matching(records) -> list[dict]:
        found = [json.loads(r.value) for r in records if r.key == key.encode()]
        return [e for e in found if event_type is None or e["type"] == event_type]

    records = await kafka.wait_for(topic, lambda rs: len(matching(rs)) >= wanted)
    return matching(records)


async def test_status_and_priority_updates_are_validated_announced_and_audited(inbox, harness, kafka,
                                                                                rpc_error) -> None:
    tenant = inbox.new_tenant()
    guest = await inbox.guest(tenant, at=AT)
    agent = inbox.user(tenant, user_id="agent-1", ip="203.0.113.7", user_agent="Mozilla/5.0 test")
    conversation_id = guest.conversation.id

    updated = await inbox.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="resolved",
                                                   priority="urgent"), metadata=agent)
    assert (updated.status, updated.priority) == ("resolved", "urgent")
    assert updated.contact.id == guest.contact.id
    same = await inbox.stub.UpdateConversation(  # no change: no event
        conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="resolved"),
        metadata=agent)
    assert same.status == "resolved"

    for bad in (conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="closed"),
                conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, priority="critical")):
        assert (await rpc_error(inbox.stub.UpdateConversation(bad, metadata=agent)))[0] == \
            grpc.StatusCode.INVALID_ARGUMENT

    # API keys may update status with the write scope, not with read only
    reopened = await inbox.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="open"),
        metadata=inbox.api_key(tenant, "conversations:write"))
    assert reopened.status == "open"
    assert await rpc_error(inbox.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="pending"),
        metadata=inbox.api_key(tenant, "conversations:read"))) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")

    # another tenant's user: not found, and nothing changes
    stranger = inbox.user(inbox.new_tenant(), role="admin")
    assert (await rpc_error(inbox.stub.UpdateConversation(
        conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, status="pending"),
        metadata=stranger)))[0] == grpc.StatusCode.NOT_FOUND

    updates = await events_of(kafka, harness.events_topic, conversation_id, 2, "conversation.updated")
    assert [e["data"]["status"] for e in updates] == ["resolved", "open"]
    assert updates[0]["data"]["priority"] == "urgent" and updates[0]["tenantId"] == tenant

    audits = await events_of(kafka, harness.audit_topic, tenant, 2)
    assert all(a["type"] == "audit.recorded" for a in audits)
    first, second = audits[0]["data"], audits[1]["data"]
    assert first["action"] == "conversation.updated" and first["targetId"] == conversation_id
    assert (first["actorType"], first["actorId"]) == ("user", "agent-1")
    assert (first["ip"], first["userAgent"]) == ("203.0.113.7", "Mozilla/5.0 test")
    assert first["details"]["changes"] == {"status": "resolved", "priority": "urgent"}
    assert second["actorType"] == "api_key" and second["details"]["changes"] == {"status": "open"}


async def test_assignment_needs_an_active_user_of_the_same_tenant(inbox, harness, kafka, rpc_error) -> None:
    tenant = inbox.new_tenant()
    guest = await inbox.guest(tenant, at=AT)
    conversation_id = guest.conversation.id
    active = harness.auth.add_user(tenant_id=tenant)
    inactive = harness.auth.add_user(tenant_id=tenant, active=False)
    foreign = harness.auth.add_user(tenant_id=inbox.new_tenant())
    admin = inbox.user(tenant, role="admin", user_id="admin-1")

    for attendant_id in (inactive, foreign, "no-such-user"):
        assert await rpc_error(inbox.stub.AssignConversation(
            conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=attendant_id),
            metadata=admin)) == (grpc.StatusCode.FAILED_PRECONDITION, "ASSIGNEE_INVALID")
    assert (inactive, "admin-1") in harness.auth.calls  # asked at auth with the caller's own token

    assigned = await inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=active),
        metadata=admin)
    assert assigned.assigned_to == active
    unassigned = await inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=""), metadata=admin)
    assert unassigned.assigned_to == ""

    assert await rpc_error(inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=active),
        metadata=inbox.api_key(tenant, "conversations:read"))) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                    "SCOPE_MISSING")
    # an automation (a bot handing the guest to a person) assigns with a conversations:write key
    by_key = await inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=active),
        metadata=inbox.api_key(tenant, "conversations:write"))
    assert by_key.assigned_to == active
    # auth refuses API keys GetUser: the key's assignee is looked up with the service's own token
    assert harness.auth.calls[-1] == (active, "service:conversation"), harness.auth.calls
    foreign_by_key = await rpc_error(inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=foreign),
        metadata=inbox.api_key(tenant, "conversations:write")))
    assert foreign_by_key == (grpc.StatusCode.FAILED_PRECONDITION, "ASSIGNEE_INVALID")  # another tenant's user
    unassigned = await inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=""), metadata=admin)
    assert unassigned.assigned_to == ""
    assert (await rpc_error(inbox.stub.AssignConversation(
        conversation_pb2.AssignConversationRequest(conversation_id=conversation_id, attendant_id=""),
        metadata=inbox.user(inbox.new_tenant(), role="admin"))))[0] == grpc.StatusCode.NOT_FOUND

    assignments = await events_of(kafka, harness.events_topic, conversation_id, 4, "conversation.assigned")
    assert [e["data"] for e in assignments] == [
        {"conversationId": conversation_id, "attendantId": active, "previousAttendantId": None},
        {"conversationId": conversation_id, "attendantId": None, "previousAttendantId": active},
    ] * 2
    audits = await events_of(kafka, harness.audit_topic, tenant, 4)
    assert [a["data"]["action"] for a in audits] == ["conversation.assigned"] * 4
    assert audits[0]["data"]["details"] == {"attendantId": active, "previousAttendantId": None}
    assert audits[2]["data"]["actorType"] == "api_key"  # the automation's assignment is audited as the key's


async def test_tags_crud_attach_and_detach(inbox, harness, kafka, rpc_error) -> None:
    tenant = inbox.new_tenant()
    admin, agent = inbox.user(tenant, role="admin"), inbox.user(tenant)
    guest = await inbox.guest(tenant, at=AT)
    conversation_id = guest.conversation.id

    late = await inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="Late checkout", color="#00ff00"),
                                      metadata=admin)
    assert (late.name, late.color) == ("Late checkout", "#00ff00") and late.id
    assert await rpc_error(inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="LATE CHECKOUT",
                                                                                   color="#000000"),
                                                metadata=admin)) == (grpc.StatusCode.ALREADY_EXISTS, "TAG_EXISTS")
    for bad in (conversation_pb2.CreateTagRequest(name="x", color="red"),
                conversation_pb2.CreateTagRequest(name="x", color="#12345"),
                conversation_pb2.CreateTagRequest(name="  ", color="#123456")):
        assert (await rpc_error(inbox.stub.CreateTag(bad, metadata=admin)))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert await rpc_error(inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="y", color="#123456"),
                                                metadata=agent)) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                     "FORBIDDEN_ROLE")
    # the same name in another tenant is fine
    await inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="Late checkout", color="#00ff00"),
                               metadata=inbox.user(inbox.new_tenant(), role="admin"))
    spa = await inbox.stub.CreateTag(conversation_pb2.CreateTagRequest(name="Spa", color="#0000ff"), metadata=admin)
    assert await rpc_error(inbox.stub.UpdateTag(conversation_pb2.UpdateTagRequest(tag_id=spa.id, name="late checkout"),
                                                metadata=admin)) == (grpc.StatusCode.ALREADY_EXISTS, "TAG_EXISTS")
    renamed = await inbox.stub.UpdateTag(conversation_pb2.UpdateTagRequest(tag_id=spa.id, name="Spa & wellness",
                                                                           color="#ABCDEF"), metadata=admin)
    assert (renamed.name, renamed.color) == ("Spa & wellness", "#abcdef")
    listed = await inbox.stub.ListTags(conversation_pb2.ListTagsRequest(), metadata=agent)
    assert [t.name for t in listed.items] == ["Late checkout", "Spa & wellness"]

    once = await inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(conversation_id=conversation_id,
                                                                        tag_id=late.id), metadata=agent)
    twice = await inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(conversation_id=conversation_id,
                                                                         tag_id=late.id), metadata=agent)
    assert [t.id for t in once.tags] == [t.id for t in twice.tags] == [late.id]
    await inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(conversation_id=conversation_id, tag_id=spa.id),
                               metadata=agent)
    detached = await inbox.stub.DetachTag(conversation_pb2.DetachTagRequest(conversation_id=conversation_id,
                                                                            tag_id=late.id), metadata=agent)
    again = await inbox.stub.DetachTag(conversation_pb2.DetachTagRequest(conversation_id=conversation_id,
                                                                         tag_id=late.id), metadata=agent)
    assert [t.id for t in detached.tags] == [t.id for t in again.tags] == [spa.id]

    other_admin = inbox.user(inbox.new_tenant(), role="admin")
    assert (await rpc_error(inbox.stub.AttachTag(conversation_pb2.AttachTagRequest(
        conversation_id=conversation_id, tag_id=late.id), metadata=other_admin)))[0] == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(inbox.stub.DeleteTag(conversation_pb2.DeleteTagRequest(tag_id=late.id),
                                                 metadata=other_admin)))[0] == grpc.StatusCode.NOT_FOUND
    await inbox.stub.DeleteTag(conversation_pb2.DeleteTagRequest(tag_id=spa.id), metadata=admin)
    current = await inbox.stub.GetConversation(conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
                                               metadata=agent)
    assert list(current.tags) == []

    updates = await events_of(kafka, harness.events_topic, conversation_id, 3, "conversation.updated")
    assert [[t["name"] for t in e["data"]["tags"]] for e in updates] == [
        ["Late checkout"], ["Late checkout", "Spa & wellness"], ["Spa & wellness"]]  # idempotent calls: no event
    audits = await events_of(kafka, harness.audit_topic, tenant, 7)
    assert [a["data"]["action"] for a in audits] == [
        "tag.created", "tag.created", "tag.updated", "conversation.tag_attached", "conversation.tag_attached",
        "conversation.tag_detached", "tag.deleted"]
    deleted = await events_of(kafka, harness.events_topic, spa.id, 1, "tag.deleted")
    assert deleted[0]["data"]["id"] == spa.id
