"""The event contracts: every event type names the view its data is, and each view survives the envelope (bytes and
back) unchanged, in camelCase on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eva_events import conversation, messaging
from eva_events.conversation import (
    EVENT_DATA,
    ContactView,
    ConversationAssigned,
    ConversationView,
    EscalationView,
    TagView,
)
from eva_events.envelope import CamelModel, EventEnvelope, make_event
from eva_events.messaging import ContactSnapshot, MediaView, MessageView, StatusChangeView
from pydantic.alias_generators import to_camel

AT = datetime(2026, 11, 29, 8, 30, 15, 123000, tzinfo=UTC)
CONTACT = ContactView(id="ct-1", wa_id="351910000001", user_id=None, name="José", phone="351910000001",
                      created_at=AT, updated_at=AT)
TAG = TagView(id="tag-1", name="VIP", color="#FFAA00", created_at=AT, updated_at=AT)
SAMPLES: dict[type[CamelModel], CamelModel] = {
    ContactView: CONTACT,
    TagView: TAG,
    ConversationView: ConversationView(
        id="c-1", tenant_id="t-1", contact_id="ct-1", status="open", assigned_to="u-1", priority="high",
        last_message_at=AT, last_message_preview="Olá", last_inbound_at=AT, window_expires_at=None, unread_count=2,
        phone_number_id="pn-1", created_at=AT, updated_at=AT, contact=CONTACT, tags=[TAG]),
    ConversationAssigned: ConversationAssigned(conversation_id="c-1", attendant_id="u-2", previous_attendant_id=None),
    EscalationView: EscalationView(
        id="e-1", tenant_id="t-1", conversation_id="c-1", reason="VIP guest", priority="urgent", status="resolved",
        raised_by="u-1", acknowledged_by="u-2", resolved_by="u-2", note="done", created_at=AT, acknowledged_at=AT,
        resolved_at=AT),
    MessageView: MessageView(
        id="m-1", conversation_id="c-1", contact_id="ct-1", wamid="wamid.X", direction="inbound", type="image",
        status="RECEIVED", content={"image": {"id": "media-1"}}, media=MediaView(status="ready", size=4),
        status_history=[StatusChangeView(status="RECEIVED", at=AT)], sent_at=AT, created_at=AT,
        contact=ContactSnapshot(id="ct-1", wa_id="351910000001", name="José")),
}


def through_the_envelope(event_type: str, data: CamelModel) -> EventEnvelope:
    return EventEnvelope.from_bytes(make_event(event_type, tenant_id="t-1", data=data).to_bytes())


def test_the_declared_event_types_are_exactly_those_with_a_view() -> None:
    declared = {value for name, value in vars(conversation).items() if name.isupper() and isinstance(value, str)}
    assert declared == set(EVENT_DATA) == conversation.EVENT_TYPES
    assert len(declared) == 10
    assert not conversation.EVENT_TYPES & messaging.EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(EVENT_DATA))
def test_each_conversation_event_round_trips_through_the_envelope_as_its_view(event_type: str) -> None:
    view = EVENT_DATA[event_type]
    received = through_the_envelope(event_type, SAMPLES[view])
    assert received.type == event_type and received.tenant_id == "t-1"
    assert view.model_validate(received.data) == SAMPLES[view]


@pytest.mark.parametrize("event_type", sorted(messaging.EVENT_TYPES))
def test_each_message_event_round_trips_through_the_envelope_as_a_message(event_type: str) -> None:
    received = through_the_envelope(event_type, SAMPLES[MessageView])
    assert MessageView.model_validate(received.data) == SAMPLES[MessageView]


@pytest.mark.parametrize("view", list(SAMPLES), ids=lambda view: view.__name__)
def test_views_travel_in_camel_case_with_every_field(view: type[CamelModel]) -> None:
    data = through_the_envelope("any.type", SAMPLES[view]).data
    assert set(data) == {to_camel(name) for name in view.model_fields}
    assert all("_" not in key for key in data)


def test_datetimes_travel_as_utc_rfc3339() -> None:
    data = through_the_envelope(conversation.CONVERSATION_UPDATED, SAMPLES[ConversationView]).data
    assert data["createdAt"].startswith("2026-11-29T08:30:15.123") and data["createdAt"].endswith("Z")
    assert datetime.fromisoformat(data["createdAt"]) == AT
    assert data["windowExpiresAt"] is None and data["contact"]["createdAt"] == data["createdAt"]
