"""Which of Eva's internal events a webhook subscriber gets, under which public type, with which `data`.

| internal event (topic) | public type | `data` |
|---|---|---|
| `message.received` (messaging.events.v1) | `message.received` | the message as the REST API shows it, with `contact` |
| `message.created`, `source: business_app` (a coexistence echo) | `message.received` | the same (outbound) |
| `message.status_changed` | `message.status` | `{messageId, conversationId, status, error?}` |
| `conversation.created` / `.updated` (conversation.events.v1) | same | the conversation, its contact and tags |
| `conversation.assigned` | `conversation.assigned` | `{conversationId, attendantId}` |
| `escalation.raised` / `escalation.updated` | same | the escalation |

`data` is `eva_events.client_views` — exactly what Socket.io emits for the same event. Not delivered: messages sent
through Eva (`message.created` with `source: eva`: the automation or attendant that sent it knows, and a flow
answering every message would otherwise answer itself), `message.updated` (media stored, reactions), `message.read`,
`template.updated`, tag and contact events. The ordering key (deliveries of one key arrive in order) is the
conversation, or the tenant for an event without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from eva_events import conversation, messaging
from eva_events.client_views import client_view
from eva_events.envelope import EventEnvelope
from eva_events.times import rfc3339

MESSAGE_RECEIVED: Final = "message.received"
MESSAGE_STATUS: Final = "message.status"
CONVERSATION_CREATED: Final = "conversation.created"
CONVERSATION_UPDATED: Final = "conversation.updated"
CONVERSATION_ASSIGNED: Final = "conversation.assigned"
ESCALATION_RAISED: Final = "escalation.raised"
ESCALATION_UPDATED: Final = "escalation.updated"

PUBLIC_TYPES: Final = (MESSAGE_RECEIVED, MESSAGE_STATUS, CONVERSATION_CREATED, CONVERSATION_UPDATED,
                       CONVERSATION_ASSIGNED, ESCALATION_RAISED, ESCALATION_UPDATED)

_PUBLIC_TYPE: Final[dict[str, str]] = {
    messaging.MESSAGE_RECEIVED: MESSAGE_RECEIVED,
    messaging.MESSAGE_STATUS_CHANGED: MESSAGE_STATUS,
    conversation.CONVERSATION_CREATED: CONVERSATION_CREATED,
    conversation.CONVERSATION_UPDATED: CONVERSATION_UPDATED,
    conversation.CONVERSATION_ASSIGNED: CONVERSATION_ASSIGNED,
    conversation.ESCALATION_RAISED: ESCALATION_RAISED,
    conversation.ESCALATION_UPDATED: ESCALATION_UPDATED,
}

NOT_DELIVERED_TYPES: Final = frozenset({
    messaging.MESSAGE_UPDATED, messaging.MESSAGE_READ, messaging.TEMPLATE_UPDATED,
    conversation.TAG_CREATED, conversation.TAG_UPDATED, conversation.TAG_DELETED,
    conversation.CONTACT_CREATED, conversation.CONTACT_UPDATED,
})
"""Internal types deliberately not delivered (`message.created` is delivered only for coexistence echoes)."""


@dataclass(frozen=True, slots=True)
class PublicEvent:
    event_id: str
    tenant_id: str
    type: str
    occurred_at: datetime
    ordering_key: str
    data: dict[str, Any]

    def envelope(self, seq: int) -> dict[str, Any]:
        """The body a subscriber receives: `{id, type, tenantId, occurredAt, seq, data}`."""
        return {"id": self.event_id, "type": self.type, "tenantId": self.tenant_id,
                "occurredAt": rfc3339(self.occurred_at), "seq": seq, "data": self.data}


def public_type(envelope: EventEnvelope) -> str | None:
    if envelope.type == messaging.MESSAGE_CREATED:
        return MESSAGE_RECEIVED if envelope.data.get("source") == messaging.SOURCE_BUSINESS_APP else None
    return _PUBLIC_TYPE.get(envelope.type)


def to_public(envelope: EventEnvelope) -> PublicEvent | None:
    """The public event an internal one becomes, or None when subscribers do not get it."""
    kind = public_type(envelope)
    if kind is None or not envelope.tenant_id:
        return None
    data = client_view(envelope.type, envelope.data)
    if data is None:
        return None
    return PublicEvent(event_id=envelope.id, tenant_id=envelope.tenant_id, type=kind,
                       occurred_at=envelope.occurred_at, ordering_key=ordering_key(kind, data, envelope.tenant_id),
                       data=data)


def ordering_key(kind: str, data: dict[str, Any], tenant_id: str) -> str:
    conversation_id = data.get("conversationId")
    if not conversation_id and kind in (CONVERSATION_CREATED, CONVERSATION_UPDATED):
        conversation_id = data.get("id")
    return f"conversation:{conversation_id}" if conversation_id else f"tenant:{tenant_id}"
