"""The conversation, contact, tag and escalation the REST API shows and the ones the conversation service's events
carry (eva_events.conversation, relayed by realtime as `conversation:updated`, `escalation:*`) are the same object:
one row's values rendered by the gateway from the gRPC answer and by the event's view are the same JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eva.conversation.v1 import conversation_pb2
from eva_events.conversation import ContactView, ConversationView, EscalationView, TagView
from eva_events.envelope import CamelModel
from gateway.schemas.conversation import ContactOut, ConversationOut
from gateway.schemas.escalations import EscalationOut
from gateway.schemas.tags import TagOut
from google.protobuf import json_format
from google.protobuf.message import Message

AT = datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CONTACT = ContactView(id="ct-1", wa_id="351910000001", user_id=None, name="José", phone="351910000001",
                      created_at=AT, updated_at=LATER)
TAG = TagView(id="tag-1", name="VIP", color="#FFAA00", created_at=AT, updated_at=AT)
CONVERSATION = ConversationView(
    id="c-1", tenant_id="t-1", contact_id="ct-1", status="open", assigned_to="u-1", priority="high",
    last_message_at=LATER, last_message_preview="[image]", last_inbound_at=AT, window_expires_at=None, unread_count=3,
    phone_number_id="pn-1", created_at=AT, updated_at=LATER, contact=CONTACT, tags=[TAG])
ESCALATION = EscalationView(
    id="e-1", tenant_id="t-1", conversation_id="c-1", reason="VIP guest", priority="urgent", status="acknowledged",
    raised_by="u-1", acknowledged_by="u-2", resolved_by=None, note=None, created_at=AT, acknowledged_at=LATER,
    resolved_at=None)


def _without_nulls(value: Any) -> Any:
    """JSON as the gRPC answer carries it: proto3 has no null (an absent string is empty)."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def answer(view: CamelModel, message: Message) -> Any:
    """The gRPC object the conversation service answers for the same row (proto3 JSON names are camelCase)."""
    return json_format.ParseDict(_without_nulls(view.to_json_dict()), message, ignore_unknown_fields=True)


@pytest.mark.parametrize(("view", "rest", "message"), [
    (CONVERSATION, ConversationOut, conversation_pb2.Conversation()),
    (CONTACT, ContactOut, conversation_pb2.Contact()),
    (TAG, TagOut, conversation_pb2.Tag()),
    (ESCALATION, EscalationOut, conversation_pb2.Escalation()),
], ids=["conversation", "contact", "tag", "escalation"])
def test_the_rest_object_is_the_event_object(view: CamelModel, rest: Any, message: Message) -> None:
    shown = rest.from_proto(answer(view, message)).model_dump(mode="json", by_alias=True)
    assert shown == view.to_json_dict()
