"""The operator's replay: republish stored deliveries of a time range to wa.webhooks.v1 exactly as they were first
published (same delivery id, tenant, phone number id, received time and payload), marked `replayed: true`, so
messaging processes them again. Safe to repeat: messaging stores each message once per (tenant, wamid) and
statuses only move forward."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from eva_common.errors import InvalidArgument
from eva_common.kafka.publisher import EventPublisher

from webhook_ingest_service.records import delivery_record
from webhook_ingest_service.repository import ReplayPosition, StoredDelivery

logger = logging.getLogger(__name__)

PAGE_SIZE = 200


class ReplayState(StrEnum):
    FAILED = "failed"
    PROCESSED = "processed"
    RECEIVED = "received"
    ALL = "all"


class ReplaySource(Protocol):
    async def replay_page(
        self, *, received_from: datetime, received_to: datetime, tenant_id: str | None, state: str | None,
        after: ReplayPosition | None, limit: int,
    ) -> list[StoredDelivery]: ...


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    received_from: datetime
    received_to: datetime
    tenant_id: str | None = None
    state: ReplayState = ReplayState.ALL
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.received_from.tzinfo is None or self.received_to.tzinfo is None:
            raise InvalidArgument("--from and --to need a UTC offset (RFC 3339)", code="INVALID_RANGE")
        if self.received_from >= self.received_to:
            raise InvalidArgument("--from must be before --to", code="INVALID_RANGE")


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    matched: int
    published: int


class DeliveryReplayer:
    def __init__(self, *, source: ReplaySource, publisher: EventPublisher, topic: str,
                 page_size: int = PAGE_SIZE) -> None:
        self._source = source
        self._publisher = publisher
        self._topic = topic
        self._page_size = page_size

    async def replay(self, request: ReplayRequest) -> ReplaySummary:
        """Republishes every match oldest first, one acknowledged record at a time (per-key order is kept)."""
        state = None if request.state is ReplayState.ALL else request.state.value
        matched = published = 0
        after: ReplayPosition | None = None
        while True:
            page = await self._source.replay_page(
                received_from=request.received_from, received_to=request.received_to, tenant_id=request.tenant_id,
                state=state, after=after, limit=self._page_size,
            )
            for stored in page:
                matched += 1
                if request.dry_run:
                    continue
                record = delivery_record(
                    delivery_id=stored.delivery_id, tenant_id=stored.tenant_id,
                    phone_number_id=stored.phone_number_id, received_at=stored.received_at, payload=stored.payload,
                    traceparent=None, replayed=True,
                )
                await self._publisher.publish(self._topic, key=record.key, value=record.value, headers=record.headers)
                published += 1
            if len(page) < self._page_size:
                break
            last = page[-1]
            after = ReplayPosition(received_at=last.received_at, delivery_id=last.delivery_id)
        logger.info("replay finished", extra={"matched": matched, "published": published,
                                               "tenant_id": request.tenant_id, "state": request.state.value,
                                               "dry_run": request.dry_run})
        return ReplaySummary(matched=matched, published=published)
