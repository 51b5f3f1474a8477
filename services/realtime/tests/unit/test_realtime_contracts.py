"""Realtime against the event contracts (eva_events): every event type a producer emits is one realtime knows,
relayed or deliberately not, and the assignment is read from the conversation service's own view."""

from __future__ import annotations

from datetime import UTC, datetime

from eva_events import conversation, messaging
from eva_events.conversation import ConversationAssigned, EscalationView
from eva_events.envelope import EventEnvelope, make_event
from realtime_service.mapping import NOT_RELAYED_TYPES, RELAYED_TYPES, to_emission


def test_every_produced_event_type_is_known_to_realtime() -> None:
    produced = conversation.EVENT_TYPES | messaging.EVENT_TYPES
    assert RELAYED_TYPES | NOT_RELAYED_TYPES == produced
    assert not RELAYED_TYPES & NOT_RELAYED_TYPES
    for event_type in NOT_RELAYED_TYPES:
        assert to_emission(make_event(event_type, tenant_id="t-1", data={"id": "x"})) is None


def received(event_type: str, data: ConversationAssigned | EscalationView) -> EventEnvelope:
    """The event as realtime reads it off Kafka."""
    return EventEnvelope.from_bytes(make_event(event_type, tenant_id="t-1", data=data).to_bytes())


def test_the_assignment_the_conversation_service_emits_reaches_the_tenant_and_the_assignee() -> None:
    reassigned = ConversationAssigned(conversation_id="c-1", attendant_id="u-2", previous_attendant_id="u-1")
    emission = to_emission(received(conversation.CONVERSATION_ASSIGNED, reassigned))
    assert emission is not None
    assert (emission.event, emission.rooms) == ("conversation:assigned", ["tenant:t-1", "user:u-2"])
    assert emission.payload == {"conversationId": "c-1", "attendantId": "u-2"}
    unassigned = ConversationAssigned(conversation_id="c-1", attendant_id=None, previous_attendant_id="u-2")
    emission = to_emission(received(conversation.CONVERSATION_ASSIGNED, unassigned))
    assert emission is not None and emission.rooms == "tenant:t-1"
    assert emission.payload == {"conversationId": "c-1", "attendantId": None}


def test_an_escalation_is_relayed_as_the_view() -> None:
    at = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    escalation = EscalationView(
        id="e-1", tenant_id="t-1", conversation_id="c-1", reason="VIP guest", priority="high", status="open",
        raised_by="u-1", acknowledged_by=None, resolved_by=None, note=None, created_at=at, acknowledged_at=None,
        resolved_at=None)
    emission = to_emission(received(conversation.ESCALATION_RAISED, escalation))
    assert emission is not None and emission.event == "escalation:raised"
    assert EscalationView.model_validate(emission.payload) == escalation
