"""Kafka record handlers of the conversation service (thin: decode, call the service)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_common.kafka.consumer import ConsumedRecord

from conversation_service.service import ConversationService


class MessagingEventsHandler:
    """messaging.events.v1 → last message, unread count (reset by `message.read`) and window of the conversation."""

    def __init__(self, *, service: ConversationService) -> None:
        self._service = service

    async def __call__(self, record: ConsumedRecord) -> None:
        await self._service.apply_message_event(event=record.event())

    async def batch(self, records: Sequence[ConsumedRecord]) -> None:
        """The events one fetch returned, applied together (one transaction per tenant)."""
        await self._service.apply_message_events([record.event() for record in records])
