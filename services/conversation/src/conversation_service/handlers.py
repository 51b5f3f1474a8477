"""Kafka record handlers of the conversation service (thin: decode, call the service)."""

from __future__ import annotations

from eva_common.kafka.consumer import ConsumedRecord

from conversation_service.service import ConversationService


class MessagingEventsHandler:
    """messaging.events.v1 → last message, unread count (reset by `message.read`) and window of the conversation."""

    def __init__(self, *, service: ConversationService) -> None:
        self._service = service

    async def __call__(self, record: ConsumedRecord) -> None:
        await self._service.apply_message_event(event=record.event())
