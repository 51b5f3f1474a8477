"""Kafka record handlers of messaging.events.v1 and conversation.events.v1 (thin: decode, fan out): a fetch's records
together, and one record (the consumer's fallback when a batch fails)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_common.errors import InvalidArgument
from eva_common.kafka.consumer import ConsumedRecord
from pydantic import ValidationError

from n8n_service.fanout import FanOut


class DomainEventsHandler:
    def __init__(self, *, fanout: FanOut) -> None:
        self._fanout = fanout

    async def __call__(self, record: ConsumedRecord) -> None:
        try:
            envelope = record.event()
        except ValidationError as error:
            raise InvalidArgument(
                f"undecodable event at {record.topic}/{record.partition}@{record.offset}") from error
        await self._fanout.apply([envelope])

    async def batch(self, records: Sequence[ConsumedRecord]) -> None:
        await self._fanout.apply([record.event() for record in records])
