"""Events produced by the messaging service (topic messaging.events.v1, keyed by conversation id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eva_events.envelope import CamelModel

MESSAGE_RECEIVED = "message.received"
MESSAGE_CREATED = "message.created"
MESSAGE_STATUS_CHANGED = "message.status_changed"


class ContactSnapshot(CamelModel):
    id: str
    wa_id: str | None = None
    name: str | None = None
    phone: str | None = None


class MessageView(CamelModel):
    """The message as the REST API shows it."""

    id: str
    conversation_id: str
    contact_id: str
    wamid: str | None
    direction: str
    type: str
    status: str
    content: dict[str, Any]
    sent_at: datetime | None
    created_at: datetime
    contact: ContactSnapshot | None = None
