"""What a client is shown of a domain event: the one mapping from an event's data to the payload Socket.io emits
(realtime) and an outbound webhook carries as its `data` (n8n-integration), so both show the same view.

Pure functions of the event's data (a dict, the JSON of the event's view): the message and conversation objects
pass through as the REST API shows them (without a producer's `seq`), a status change becomes
`{messageId, conversationId, status, error?}`, an assignment `{conversationId, attendantId}`. Event types with no
client view (tags, contacts, reads, templates) have none here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from eva_events import conversation, messaging

ClientView = Callable[[dict[str, Any]], dict[str, Any]]


def object_view(data: dict[str, Any]) -> dict[str, Any]:
    """The object itself (a message, conversation or escalation as the REST API shows it), without any `seq`."""
    return {key: value for key, value in data.items() if key != "seq"}


def message_status_view(data: dict[str, Any]) -> dict[str, Any]:
    """`{messageId, conversationId, status, error?}` of a `message.status_changed` (whose data is the message)."""
    payload = {
        "messageId": data.get("messageId", data.get("id")),
        "conversationId": data.get("conversationId"),
        "status": data.get("status"),
    }
    if data.get("error") is not None:
        payload["error"] = data["error"]
    return payload


def assignment_view(data: dict[str, Any]) -> dict[str, Any]:
    """`{conversationId, attendantId}` (null: unassigned). The conversation service emits
    eva_events.conversation.ConversationAssigned (`conversationId`, `attendantId`, `previousAttendantId`); clients
    are shown only the first two."""
    return {
        "conversationId": data.get("conversationId", data.get("id")),
        "attendantId": data.get("attendantId", data.get("assignedTo")) or None,
    }


CLIENT_VIEWS: Final[Mapping[str, ClientView]] = {
    messaging.MESSAGE_RECEIVED: object_view,
    messaging.MESSAGE_CREATED: object_view,
    messaging.MESSAGE_STATUS_CHANGED: message_status_view,
    messaging.MESSAGE_UPDATED: object_view,
    conversation.CONVERSATION_CREATED: object_view,
    conversation.CONVERSATION_UPDATED: object_view,
    conversation.CONVERSATION_ASSIGNED: assignment_view,
    conversation.ESCALATION_RAISED: object_view,
    conversation.ESCALATION_UPDATED: object_view,
}
"""Every event type clients are shown, and how its data becomes the payload."""


def client_view(event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The payload clients are shown for an event, or None for a type they do not see."""
    view = CLIENT_VIEWS.get(event_type)
    return None if view is None else view(data)
