"""Events this service publishes on tenant.events.v1 (key: tenant id). They never carry a secret."""

from __future__ import annotations

from datetime import datetime

from eva_events.envelope import CamelModel, EventEnvelope, make_event
from eva_events.topics import TENANT_EVENTS

from tenant_service.domain import TenantView

TOPIC = TENANT_EVENTS
TENANT_CREATED = "tenant.created"
TENANT_UPDATED = "tenant.updated"
TENANT_STATUS_CHANGED = "tenant.status_changed"
WHATSAPP_CREDENTIALS_UPDATED = "whatsapp.credentials_updated"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"


class TenantCreated(CamelModel):
    tenant_id: str
    name: str
    slug: str
    status: str
    plan: str
    timezone: str
    locale: str
    created_at: datetime


class TenantUpdated(CamelModel):
    """The tenant's settings after an UpdateTenant, and which of them changed."""

    tenant_id: str
    name: str
    timezone: str
    locale: str
    changed: list[str]
    updated_at: datetime


class TenantStatusChanged(CamelModel):
    """A super admin suspended or reactivated the tenant."""

    tenant_id: str
    status: str
    previous_status: str
    changed_by: str
    changed_at: datetime


class ApiKeyCreated(CamelModel):
    """A key was created (its prefix, never the key)."""

    tenant_id: str
    key_id: str
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    created_by: str
    created_at: datetime


class ApiKeyRevoked(CamelModel):
    tenant_id: str
    key_id: str
    revoked_at: datetime


class WhatsAppCredentialsUpdated(CamelModel):
    """Which number a tenant now uses and which secrets changed (never their values)."""

    tenant_id: str
    phone_number_id: str
    previous_phone_number_id: str | None
    waba_id: str
    display_phone_number: str
    access_token_changed: bool
    app_secret_changed: bool
    verify_token_changed: bool
    updated_at: datetime


def tenant_created(tenant: TenantView) -> EventEnvelope:
    data = TenantCreated(
        tenant_id=tenant.id,
        name=tenant.name,
        slug=tenant.slug,
        status=tenant.status,
        plan=tenant.plan,
        timezone=tenant.timezone,
        locale=tenant.locale,
        created_at=tenant.created_at,
    )
    return make_event(TENANT_CREATED, tenant_id=tenant.id, data=data)


def whatsapp_credentials_updated(data: WhatsAppCredentialsUpdated) -> EventEnvelope:
    return make_event(WHATSAPP_CREDENTIALS_UPDATED, tenant_id=data.tenant_id, data=data)


def tenant_updated(data: TenantUpdated) -> EventEnvelope:
    return make_event(TENANT_UPDATED, tenant_id=data.tenant_id, data=data)


def tenant_status_changed(data: TenantStatusChanged) -> EventEnvelope:
    return make_event(TENANT_STATUS_CHANGED, tenant_id=data.tenant_id, data=data)


def api_key_created(data: ApiKeyCreated) -> EventEnvelope:
    return make_event(API_KEY_CREATED, tenant_id=data.tenant_id, data=data)


def api_key_revoked(data: ApiKeyRevoked) -> EventEnvelope:
    return make_event(API_KEY_REVOKED, tenant_id=data.tenant_id, data=data)
