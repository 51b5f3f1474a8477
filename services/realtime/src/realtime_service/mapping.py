"""Which Socket.io event a Kafka event becomes, in which rooms, with which payload (pure functions). The
payloads are the shared client views (`eva_events.client_views`), which outbound webhooks carry too.

The Kafka event types are the contracts' (eva_events.messaging, eva_events.conversation): each one the producers
emit is either relayed (`RELAYED_TYPES`) or deliberately not (`NOT_RELAYED_TYPES`). Every event goes to its
tenant's room; an assignment also goes to the assignee's user room, in the same emit, so a socket in both rooms
gets it once. `seq` is not part of the payload here: the sequencer adds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eva_common.realtime.rooms import tenant_room, user_room
from eva_events import conversation, messaging
from eva_events.client_views import CLIENT_VIEWS, ClientView
from eva_events.envelope import EventEnvelope

MESSAGE_NEW = "message:new"
MESSAGE_STATUS = "message:status"
CONVERSATION_UPDATED_EVENT = "conversation:updated"
CONVERSATION_ASSIGNED_EVENT = "conversation:assigned"
MESSAGE_UPDATED_EVENT = "message:updated"
ESCALATION_RAISED_EVENT = "escalation:raised"
ESCALATION_UPDATED_EVENT = "escalation:updated"

Rooms = str | list[str]
"""Where to emit: one room, or several in one emit (python-socketio delivers it once per socket in any of them)."""


@dataclass(frozen=True, slots=True)
class Emission:
    event: str
    room: str  # the tenant's room: every relayed event goes there
    payload: dict[str, Any]
    user_rooms: tuple[str, ...] = ()  # users who get it in their own room too (an assignee)

    @property
    def rooms(self) -> Rooms:
        """The tenant's room alone, or together with the user rooms (one emit: each socket gets it once)."""
        return [self.room, *self.user_rooms] if self.user_rooms else self.room


def _assignee_room(payload: dict[str, Any]) -> tuple[str, ...]:
    attendant = payload["attendantId"]
    return (user_room(attendant),) if isinstance(attendant, str) else ()


def _no_user_rooms(_payload: dict[str, Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class _Route:
    event: str
    payload: ClientView
    user_rooms: Callable[[dict[str, Any]], tuple[str, ...]] = _no_user_rooms


_EVENT_NAMES: Final[dict[str, str]] = {
    messaging.MESSAGE_RECEIVED: MESSAGE_NEW,
    messaging.MESSAGE_CREATED: MESSAGE_NEW,
    messaging.MESSAGE_STATUS_CHANGED: MESSAGE_STATUS,
    messaging.MESSAGE_UPDATED: MESSAGE_UPDATED_EVENT,
    conversation.CONVERSATION_CREATED: CONVERSATION_UPDATED_EVENT,
    conversation.CONVERSATION_UPDATED: CONVERSATION_UPDATED_EVENT,
    conversation.CONVERSATION_ASSIGNED: CONVERSATION_ASSIGNED_EVENT,
    conversation.ESCALATION_RAISED: ESCALATION_RAISED_EVENT,
    conversation.ESCALATION_UPDATED: ESCALATION_UPDATED_EVENT,
}
# the payloads are the shared client views (eva_events.client_views), which outbound webhooks carry too
_ROUTES: Final[dict[str, _Route]] = {
    event_type: _Route(name, CLIENT_VIEWS[event_type],
                       _assignee_room if event_type == conversation.CONVERSATION_ASSIGNED else _no_user_rooms)
    for event_type, name in _EVENT_NAMES.items()
}

RELAYED_TYPES: Final = frozenset(_ROUTES)
NOT_RELAYED_TYPES: Final = frozenset({
    # Not followed live: the agent UI reads tags and contacts over REST, and each `conversation:updated` carries the
    # conversation's contact and tags.
    conversation.TAG_CREATED, conversation.TAG_UPDATED, conversation.TAG_DELETED,
    conversation.CONTACT_CREATED, conversation.CONTACT_UPDATED,
    # A read resets the conversation's unread count: the conversation service announces that as
    # `conversation:updated`. Templates are read over REST (GET /api/templates).
    messaging.MESSAGE_READ, messaging.TEMPLATE_UPDATED,
})


def to_emission(envelope: EventEnvelope) -> Emission | None:
    """The Socket.io emission for an event, or None for event types the browser does not see."""
    route = _ROUTES.get(envelope.type)
    if route is None:
        return None
    payload = route.payload(envelope.data)
    return Emission(event=route.event, room=tenant_room(envelope.tenant_id), payload=payload,
                    user_rooms=route.user_rooms(payload))
