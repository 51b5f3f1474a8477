from __future__ import annotations

from typing import Any

import pytest
from eva_events.envelope import make_event
from realtime_service.mapping import to_emission

MESSAGE: dict[str, Any] = {
    "id": "m-1", "conversationId": "c-1", "contactId": "ct-1", "wamid": "wamid.X", "direction": "inbound",
    "type": "text", "status": "RECEIVED", "content": {"text": {"body": "hi"}}, "sentAt": None,
    "createdAt": "2026-11-29T08:00:00Z", "contact": {"id": "ct-1", "waId": "1555", "name": "José", "phone": None},
}


@pytest.mark.parametrize("event_type", ["message.received", "message.created"])
def test_new_messages_become_message_new_in_the_tenant_room(event_type: str) -> None:
    emission = to_emission(make_event(event_type, tenant_id="t-1", data=MESSAGE))
    assert emission is not None
    assert (emission.event, emission.rooms) == ("message:new", "tenant:t-1")
    assert emission.payload == MESSAGE


def test_a_seq_in_the_data_is_not_passed_through() -> None:
    emission = to_emission(make_event("message.received", tenant_id="t-1", data={**MESSAGE, "seq": 99}))
    assert emission is not None and "seq" not in emission.payload


def test_status_changes_become_message_status() -> None:
    failed = {**MESSAGE, "status": "FAILED", "error": {"code": 131047, "title": "Re-engagement message"}}
    emission = to_emission(make_event("message.status_changed", tenant_id="t-1", data=failed))
    assert emission is not None and emission.event == "message:status"
    assert emission.payload == {"messageId": "m-1", "conversationId": "c-1", "status": "FAILED",
                                "error": {"code": 131047, "title": "Re-engagement message"}}
    delivered = to_emission(make_event("message.status_changed", tenant_id="t-1", data={**MESSAGE, "status": "READ"}))
    assert delivered is not None
    assert delivered.payload == {"messageId": "m-1", "conversationId": "c-1", "status": "READ"}


@pytest.mark.parametrize("event_type", ["conversation.created", "conversation.updated"])
def test_conversation_changes_become_conversation_updated(event_type: str) -> None:
    conversation = {"id": "c-1", "status": "open", "unreadCount": 2}
    emission = to_emission(make_event(event_type, tenant_id="t-2", data=conversation))
    assert emission is not None
    assert (emission.event, emission.rooms, emission.payload) == ("conversation:updated", "tenant:t-2", conversation)


def test_assignment_becomes_conversation_assigned_for_the_tenant_and_the_assignee() -> None:
    emission = to_emission(make_event("conversation.assigned", tenant_id="t-1",
                                      data={"conversationId": "c-1", "attendantId": "u-9"}))
    assert emission is not None and emission.event == "conversation:assigned"
    assert emission.payload == {"conversationId": "c-1", "attendantId": "u-9"}
    assert emission.rooms == ["tenant:t-1", "user:u-9"]  # one emit: a socket in both rooms gets it once
    unassigned = to_emission(make_event("conversation.assigned", tenant_id="t-1",
                                        data={"id": "c-1", "attendantId": None}))
    assert unassigned is not None and unassigned.payload == {"conversationId": "c-1", "attendantId": None}
    assert unassigned.rooms == "tenant:t-1"  # nobody to tell in particular


def test_assignment_drops_the_previous_attendant_and_maps_unassignment_to_null() -> None:
    # the shape the conversation service emits
    emission = to_emission(make_event("conversation.assigned", tenant_id="t-1", data={
        "conversationId": "c-1", "attendantId": "u-2", "previousAttendantId": "u-1"}))
    assert emission is not None and emission.rooms == ["tenant:t-1", "user:u-2"]
    assert emission.payload == {"conversationId": "c-1", "attendantId": "u-2"}
    cleared = to_emission(make_event("conversation.assigned", tenant_id="t-1", data={
        "conversationId": "c-1", "attendantId": "", "previousAttendantId": "u-2"}))
    assert cleared is not None and cleared.payload == {"conversationId": "c-1", "attendantId": None}
    assert cleared.rooms == "tenant:t-1"


def test_message_updates_become_message_updated_with_the_message_object() -> None:
    ready = {**MESSAGE, "type": "image", "media": {"status": "ready", "mimeType": "image/jpeg", "size": 2048},
             "seq": 7}
    emission = to_emission(make_event("message.updated", tenant_id="t-3", data=ready))
    assert emission is not None
    assert (emission.event, emission.rooms) == ("message:updated", "tenant:t-3")
    assert emission.payload == {key: value for key, value in ready.items() if key != "seq"}


@pytest.mark.parametrize(("event_type", "event"), [("escalation.raised", "escalation:raised"),
                                                    ("escalation.updated", "escalation:updated")])
def test_escalations_become_escalation_events_with_the_object(event_type: str, event: str) -> None:
    escalation = {"id": "e-1", "conversationId": "c-1", "reason": "VIP guest", "priority": "high", "status": "open"}
    emission = to_emission(make_event(event_type, tenant_id="t-4", data=escalation))
    assert emission is not None
    assert (emission.event, emission.rooms, emission.payload) == (event, "tenant:t-4", escalation)


def test_other_events_are_not_relayed() -> None:
    assert to_emission(make_event("message.media_stored", tenant_id="t-1", data={})) is None
    assert to_emission(make_event("tenant.created", tenant_id="t-1", data={})) is None
    assert to_emission(make_event("escalation.deleted", tenant_id="t-1", data={})) is None
