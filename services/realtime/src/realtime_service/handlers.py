"""Kafka record handlers for messaging.events.v1 and conversation.events.v1 (thin: decode, relay): a fetch's records
together, and one record (the consumer's fallback when a batch holds a record it cannot relay)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_common.errors import InvalidArgument, Unavailable
from eva_common.kafka.consumer import BatchHandler, ConsumedRecord, Handler
from pydantic import ValidationError
from redis.exceptions import RedisError

from realtime_service.service import RealtimeRelay


def event_handler(*, relay: RealtimeRelay) -> Handler:
    async def on_domain_event(record: ConsumedRecord) -> None:
        try:
            envelope = record.event()  # decoded by the ConsumerLoop; decoded here for a record built by hand
        except ValidationError as error:
            raise InvalidArgument(
                f"undecodable event at {record.topic}/{record.partition}@{record.offset}") from error
        try:
            await relay.relay(envelope)
        except RedisError as error:
            # Redis trouble is transient: the consumer retries (keeping the partition's order) rather than
            # dead-lettering the event.
            raise Unavailable("Redis is unavailable", code="REDIS_UNAVAILABLE") from error

    return on_domain_event


def batch_handler(*, relay: RealtimeRelay) -> BatchHandler:
    async def on_domain_events(records: Sequence[ConsumedRecord]) -> None:
        envelopes = [record.event() for record in records]  # decoded by the ConsumerLoop (batches: envelopes)
        try:
            await relay.relay_many(envelopes)
        except RedisError as error:
            raise Unavailable("Redis is unavailable", code="REDIS_UNAVAILABLE") from error

    return on_domain_events
