"""Which Socket.io event a Kafka event becomes, in which room, with which payload (pure functions).

`seq` is not part of the payload here: the sequencer adds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eva_common.realtime.rooms import tenant_room
from eva_events.envelope import EventEnvelope
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_RECEIVED, MESSAGE_STATUS_CHANGED

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_ASSIGNED = "conversation.assigned"
MESSAGE_UPDATED = "message.updated"
ESCALATION_RAISED = "escalation.raised"
ESCALATION_UPDATED = "escalation.updated"

MESSAGE_NEW = "message:new"
MESSAGE_STATUS = "message:status"
CONVERSATION_UPDATED_EVENT = "conversation:updated"
CONVERSATION_ASSIGNED_EVENT = "conversation:assigned"
MESSAGE_UPDATED_EVENT = "message:updated"
ESCALATION_RAISED_EVENT = "escalation:raised"
ESCALATION_UPDATED_EVENT = "escalation:updated"


@dataclass(frozen=True, slots=True)
class Emission:
    event: str
    room: str
    payload: dict[str, Any]


def _without_seq(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "seq"}


def _message_status(data: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "messageId": data.get("messageId", data.get("id")),
        "conversationId": data.get("conversationId"),
        "status": data.get("status"),
    }
    if data.get("error") is not None:
        payload["error"] = data["error"]
    return payload


def _conversation_assigned(data: dict[str, Any]) -> dict[str, Any]:
    """`{conversationId, attendantId}` (null: unassigned). The conversation service emits `conversationId`,
    `attendantId` and `previousAttendantId`; the browser contract carries only the first two."""
    return {
        "conversationId": data.get("conversationId", data.get("id")),
        "attendantId": data.get("attendantId", data.get("assignedTo")) or None,
    }


_PAYLOADS = {
    MESSAGE_RECEIVED: (MESSAGE_NEW, _without_seq),
    MESSAGE_CREATED: (MESSAGE_NEW, _without_seq),
    MESSAGE_STATUS_CHANGED: (MESSAGE_STATUS, _message_status),
    CONVERSATION_CREATED: (CONVERSATION_UPDATED_EVENT, _without_seq),
    CONVERSATION_UPDATED: (CONVERSATION_UPDATED_EVENT, _without_seq),
    CONVERSATION_ASSIGNED: (CONVERSATION_ASSIGNED_EVENT, _conversation_assigned),
    MESSAGE_UPDATED: (MESSAGE_UPDATED_EVENT, _without_seq),
    ESCALATION_RAISED: (ESCALATION_RAISED_EVENT, _without_seq),
    ESCALATION_UPDATED: (ESCALATION_UPDATED_EVENT, _without_seq),
}

RELAYED_TYPES = frozenset(_PAYLOADS)


def to_emission(envelope: EventEnvelope) -> Emission | None:
    """The Socket.io emission for an event, or None for event types the browser does not see."""
    mapping = _PAYLOADS.get(envelope.type)
    if mapping is None:
        return None
    event, build = mapping
    return Emission(event=event, room=tenant_room(envelope.tenant_id), payload=build(envelope.data))
