"""Events of the messaging service: messaging.events.v1 (keyed by conversation id; data MessageView + contact) and
webhook.outcomes.v1 (keyed by delivery id; data WebhookProcessed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eva_events.envelope import EventEnvelope, make_event
from eva_events.messaging import MESSAGE_UPDATED as MESSAGE_UPDATED
from eva_events.messaging import ContactSnapshot, MediaView, MessageView, SenderView, StatusChangeView
from eva_events.webhook import WEBHOOK_PROCESSED, WebhookProcessed

from messaging_service.models import Message, MessageStatus


def media_view(media: dict[str, Any] | None) -> MediaView | None:
    if not media:
        return None
    return MediaView(
        status=str(media.get("status") or ""), mime_type=media.get("mimeType") or None, size=media.get("size") or None,
        filename=media.get("filename") or None, caption=media.get("caption") or None,
        sha256=media.get("sha256") or None, error=media.get("error") or None,
    )


def message_view(
    message: Message, *, history: Sequence[MessageStatus] = (), contact: ContactSnapshot | None = None
) -> MessageView:
    """The REST object of the message (the gateway renders the same from the gRPC message)."""
    return MessageView(
        id=str(message.id),
        conversation_id=str(message.conversation_id),
        contact_id=str(message.contact_id),
        wamid=message.wamid,
        direction=message.direction,
        type=message.type,
        status=message.status,
        content=message.content,
        media=media_view(message.media),
        status_history=[StatusChangeView(status=item.status, at=item.occurred_at, error=item.errors)
                        for item in history],
        pricing_category=message.pricing_category or None,
        context=message.context or None,
        referral=message.referral or None,
        errors=message.error,
        reactions=list(message.reactions or []),
        sent_at=message.sent_at,
        created_at=message.created_at,
        updated_at=message.updated_at,
        contact=contact,
        sender=SenderView.model_validate(message.sender) if message.sender else None,
        source=message.source,
        attempts=message.attempts or 0,
        read_at=message.read_at,
        category=message.category,
    )


def message_event(
    event_type: str, message: Message, *, history: Sequence[MessageStatus] = (), contact: ContactSnapshot | None = None,
    error: Any = None, extra: Mapping[str, Any] | None = None,
) -> EventEnvelope:
    """The message's REST object (MessageView, with the guest's contact on a new message); a status change adds the
    failed status's `error` and any `extra` fields (occurredAt, category)."""
    data = message_view(message, history=history, contact=contact).to_json_dict()
    if error is not None:
        data["error"] = error
    if extra:
        data.update(extra)
    return make_event(event_type, tenant_id=message.tenant_id, data=data)


def webhook_processed_event(tenant_id: str, outcome: WebhookProcessed) -> EventEnvelope:
    return make_event(WEBHOOK_PROCESSED, tenant_id=tenant_id, data=outcome)
