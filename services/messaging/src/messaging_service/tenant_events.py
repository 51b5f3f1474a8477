"""tenant.events.v1 (group `messaging-tenant-events`): a tenant's `whatsapp.credentials_updated` enters it into the
periodic template sync (template_syncs, with its WABA id) and syncs its templates at once. Other events are skipped.
The event's `data` is read field by field (`tenantId`, `wabaId`): only those two matter here."""

from __future__ import annotations

import logging

from eva_common.kafka.consumer import ConsumedRecord

from messaging_service.template_sync import TemplateSyncer

logger = logging.getLogger(__name__)

WHATSAPP_CREDENTIALS_UPDATED = "whatsapp.credentials_updated"


class TenantEventsHandler:
    def __init__(self, *, syncer: TemplateSyncer) -> None:
        self._syncer = syncer

    async def __call__(self, record: ConsumedRecord) -> None:
        envelope = record.event()
        if envelope.type != WHATSAPP_CREDENTIALS_UPDATED:
            return
        tenant_id = envelope.data.get("tenantId") or envelope.tenant_id
        waba_id = envelope.data.get("wabaId")
        if not isinstance(tenant_id, str) or not tenant_id:
            logger.warning("credentials event without a tenant; skipped", extra={"event_id": envelope.id})
            return
        waba = waba_id if isinstance(waba_id, str) and waba_id else None
        await self._syncer.register(tenant_id=tenant_id, waba_id=waba)
        await self._syncer.sync_quietly(tenant_id=tenant_id, waba_id=waba)
