"""Kafka record handlers of the messaging service (thin: decode, call the use case)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_common.kafka.consumer import ConsumedRecord

from messaging_service.inbound import WebhookProcessor


class WebhookDeliveryHandler:
    """wa.webhooks.v1 → messages, statuses and the delivery's outcome."""

    def __init__(self, *, processor: WebhookProcessor) -> None:
        self._processor = processor

    async def __call__(self, record: ConsumedRecord) -> None:
        await self._processor.process(record.event())

    async def batch(self, records: Sequence[ConsumedRecord]) -> None:
        """The deliveries one fetch returned, processed together (WebhookProcessor.process_many)."""
        await self._processor.process_many([record.event() for record in records])
