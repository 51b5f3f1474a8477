"""Kafka record handlers of the tenant service (thin: decode, call the service)."""

from __future__ import annotations

from collections.abc import Sequence

from eva_common.kafka.consumer import ConsumedRecord

from tenant_service.audit_log.service import AuditLogService
from tenant_service.usage.service import UsageService


class MessagingEventsHandler:
    """messaging.events.v1 -> usage counts (group `tenant-usage`)."""

    def __init__(self, *, usage: UsageService) -> None:
        self._usage = usage

    async def __call__(self, record: ConsumedRecord) -> None:
        await self._usage.apply_message_event(event=record.event())

    async def batch(self, records: Sequence[ConsumedRecord]) -> None:
        """The events one fetch returned, counted together (one transaction per tenant)."""
        await self._usage.apply_message_events([record.event() for record in records])


class AuditEventsHandler:
    """audit.events.v1 -> audit_logs (group `tenant-audit`)."""

    def __init__(self, *, audit_log: AuditLogService) -> None:
        self._audit_log = audit_log

    async def __call__(self, record: ConsumedRecord) -> None:
        await self._audit_log.store(event=record.event())
