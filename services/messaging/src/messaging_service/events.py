"""Events of the messaging service: messaging.events.v1 (keyed by conversation id; data MessageView + contact) and
webhook.outcomes.v1 (keyed by delivery id; data WebhookProcessed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import ContactSnapshot, MessageView
from eva_events.webhook import WEBHOOK_PROCESSED, WebhookProcessed

from messaging_service.models import Message

MESSAGE_UPDATED = "message.updated"


def message_view(message: Message, *, contact: ContactSnapshot | None = None) -> MessageView:
    return MessageView(
        id=str(message.id),
        conversation_id=str(message.conversation_id),
        contact_id=str(message.contact_id),
        wamid=message.wamid,
        direction=message.direction,
        type=message.type,
        status=message.status,
        content=message.content,
        sent_at=message.sent_at,
        created_at=message.created_at,
        contact=contact,
    )


def message_event(
    event_type: str, message: Message, *, contact: ContactSnapshot | None = None, error: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> EventEnvelope:
    """The MessageView (plus `media` for media messages, `pricingCategory` once known, the error of a failed status
    and any `extra` fields)."""
    data = message_view(message, contact=contact).to_json_dict()
    if message.media is not None:
        data["media"] = message.media
    if message.reactions:
        data["reactions"] = message.reactions
    if message.pricing_category:
        data["pricingCategory"] = message.pricing_category
    if error is not None:
        data["error"] = error
    if extra:
        data.update(extra)
    return make_event(event_type, tenant_id=message.tenant_id, data=data)


def webhook_processed_event(tenant_id: str, outcome: WebhookProcessed) -> EventEnvelope:
    return make_event(WEBHOOK_PROCESSED, tenant_id=tenant_id, data=outcome)
