"""Events produced by the tenant service (topic tenant.events.v1, keyed by tenant id). They never carry a secret.

The messaging service consumes `whatsapp.credentials_updated` (to sync the tenant's templates) and may follow
`whatsapp.health_changed`; the data models here are the one contract both sides read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from eva_events.envelope import CamelModel
from eva_events.times import Instant

TENANT_CREATED: Final = "tenant.created"
TENANT_UPDATED: Final = "tenant.updated"
TENANT_STATUS_CHANGED: Final = "tenant.status_changed"
WHATSAPP_CREDENTIALS_UPDATED: Final = "whatsapp.credentials_updated"
WHATSAPP_HEALTH_CHANGED: Final = "whatsapp.health_changed"
API_KEY_CREATED: Final = "api_key.created"
API_KEY_REVOKED: Final = "api_key.revoked"

READ_RECEIPTS_ON_READ: Final = "on_read"  # Meta's read receipts (and typing indicators) when an attendant reads
READ_RECEIPTS_NEVER: Final = "never"
READ_RECEIPTS: Final = (READ_RECEIPTS_ON_READ, READ_RECEIPTS_NEVER)

HEALTHY: Final = "healthy"
UNHEALTHY: Final = "unhealthy"
HealthStatus = Literal["healthy", "unhealthy"]


class TenantCreated(CamelModel):
    tenant_id: str
    name: str
    slug: str
    status: str
    plan: str
    timezone: str
    locale: str
    read_receipts: str = READ_RECEIPTS_ON_READ
    created_at: Instant


class TenantUpdated(CamelModel):
    """The tenant's settings after an UpdateTenant, and which of them changed."""

    tenant_id: str
    name: str
    timezone: str
    locale: str
    read_receipts: str = READ_RECEIPTS_ON_READ
    changed: list[str]
    updated_at: Instant


class TenantStatusChanged(CamelModel):
    """A super admin suspended or reactivated the tenant."""

    tenant_id: str
    status: str
    previous_status: str
    changed_by: str
    changed_at: Instant


class ApiKeyCreated(CamelModel):
    """A key was created (its prefix, never the key)."""

    tenant_id: str
    key_id: str
    name: str
    prefix: str
    scopes: list[str]
    expires_at: Instant | None
    created_by: str
    created_at: Instant


class ApiKeyRevoked(CamelModel):
    tenant_id: str
    key_id: str
    revoked_at: Instant


class WhatsAppCredentialsUpdated(CamelModel):
    """Which number a tenant now uses, how fast it may send, and which secrets changed (never their values)."""

    tenant_id: str
    phone_number_id: str
    previous_phone_number_id: str | None
    waba_id: str
    display_phone_number: str
    access_token_changed: bool
    app_secret_changed: bool
    verify_token_changed: bool
    coexistence: bool = False
    throughput_mps: int = 0  # 0: the default for the number's kind (80, or 20 with coexistence)
    updated_at: Instant


class WhatsAppHealthChanged(CamelModel):
    """Meta refused the tenant's access token (e.g. code 190, "access token expired") or accepted it again, as
    messaging reported it; or a new access token made the number healthy again."""

    tenant_id: str
    status: HealthStatus
    previous_status: HealthStatus
    code: int | None = None
    detail: str | None = None
    since: Instant


EVENT_DATA: Final[Mapping[str, type[CamelModel]]] = {
    TENANT_CREATED: TenantCreated,
    TENANT_UPDATED: TenantUpdated,
    TENANT_STATUS_CHANGED: TenantStatusChanged,
    WHATSAPP_CREDENTIALS_UPDATED: WhatsAppCredentialsUpdated,
    WHATSAPP_HEALTH_CHANGED: WhatsAppHealthChanged,
    API_KEY_CREATED: ApiKeyCreated,
    API_KEY_REVOKED: ApiKeyRevoked,
}
"""Each event type on tenant.events.v1 and the model of its data."""
