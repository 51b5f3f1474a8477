"""The events this service publishes on tenant.events.v1 (key: tenant id), built from the contract in
eva_events.tenant (types and data models live there, for the consumers too). They never carry a secret."""

from __future__ import annotations

from eva_events.envelope import EventEnvelope, make_event
from eva_events.tenant import (
    API_KEY_CREATED,
    API_KEY_REVOKED,
    TENANT_CREATED,
    TENANT_STATUS_CHANGED,
    TENANT_UPDATED,
    WHATSAPP_CREDENTIALS_UPDATED,
    WHATSAPP_HEALTH_CHANGED,
    ApiKeyCreated,
    ApiKeyRevoked,
    TenantCreated,
    TenantStatusChanged,
    TenantUpdated,
    WhatsAppCredentialsUpdated,
    WhatsAppHealthChanged,
)
from eva_events.topics import TENANT_EVENTS

from tenant_service.domain import TenantView

TOPIC = TENANT_EVENTS

__all__ = [
    "API_KEY_CREATED", "API_KEY_REVOKED", "TENANT_CREATED", "TENANT_STATUS_CHANGED", "TENANT_UPDATED", "TOPIC",
    "WHATSAPP_CREDENTIALS_UPDATED", "WHATSAPP_HEALTH_CHANGED", "ApiKeyCreated", "ApiKeyRevoked", "TenantCreated",
    "TenantStatusChanged", "TenantUpdated", "WhatsAppCredentialsUpdated", "WhatsAppHealthChanged",
]


def tenant_created(tenant: TenantView) -> EventEnvelope:
    data = TenantCreated(
        tenant_id=tenant.id,
        name=tenant.name,
        slug=tenant.slug,
        status=tenant.status,
        plan=tenant.plan,
        timezone=tenant.timezone,
        locale=tenant.locale,
        read_receipts=tenant.read_receipts,
        created_at=tenant.created_at,
    )
    return make_event(TENANT_CREATED, tenant_id=tenant.id, data=data)


def whatsapp_credentials_updated(data: WhatsAppCredentialsUpdated) -> EventEnvelope:
    return make_event(WHATSAPP_CREDENTIALS_UPDATED, tenant_id=data.tenant_id, data=data)


def whatsapp_health_changed(data: WhatsAppHealthChanged) -> EventEnvelope:
    return make_event(WHATSAPP_HEALTH_CHANGED, tenant_id=data.tenant_id, data=data)


def tenant_updated(data: TenantUpdated) -> EventEnvelope:
    return make_event(TENANT_UPDATED, tenant_id=data.tenant_id, data=data)


def tenant_status_changed(data: TenantStatusChanged) -> EventEnvelope:
    return make_event(TENANT_STATUS_CHANGED, tenant_id=data.tenant_id, data=data)


def api_key_created(data: ApiKeyCreated) -> EventEnvelope:
    return make_event(API_KEY_CREATED, tenant_id=data.tenant_id, data=data)


def api_key_revoked(data: ApiKeyRevoked) -> EventEnvelope:
    return make_event(API_KEY_REVOKED, tenant_id=data.tenant_id, data=data)
