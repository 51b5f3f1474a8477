"""Tenant bodies: the tenant itself and its WhatsApp credentials (secrets are write-only)."""

from __future__ import annotations

from typing import Annotated

from eva.tenant.v1 import tenant_pb2
from pydantic import Field, StringConstraints

from gateway.schemas.base import CamelModel, optional

MetaId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class TenantOut(CamelModel):
    id: str
    name: str
    slug: str
    status: str
    plan: str | None
    timezone: str | None
    locale: str | None
    created_at: str | None

    @classmethod
    def from_proto(cls, tenant: tenant_pb2.Tenant) -> TenantOut:
        return cls(
            id=tenant.id, name=tenant.name, slug=tenant.slug, status=tenant.status, plan=optional(tenant.plan),
            timezone=optional(tenant.timezone), locale=optional(tenant.locale),
            created_at=optional(tenant.created_at),
        )


class WhatsAppCredentialsIn(CamelModel):
    phone_number_id: MetaId = Field(description="Meta's phone number id (digits)")
    waba_id: MetaId = Field(description="The WhatsApp Business Account id (digits)")
    access_token: Secret = Field(description="Graph API access token; stored encrypted, never returned")
    app_secret: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Meta app secret that signs the webhooks; stored encrypted, never returned")
    verify_token: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="The webhook verify token; never returned")
    display_phone_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None

    def to_proto(self) -> tenant_pb2.PutWhatsAppCredentialsRequest:
        return tenant_pb2.PutWhatsAppCredentialsRequest(
            phone_number_id=self.phone_number_id, waba_id=self.waba_id, access_token=self.access_token,
            app_secret=self.app_secret, verify_token=self.verify_token,
            display_phone_number=self.display_phone_number or "",
        )


class SecretStateOut(CamelModel):
    set: bool
    last4: str | None

    @classmethod
    def from_proto(cls, state: tenant_pb2.SecretState) -> SecretStateOut:
        return cls(set=state.set, last4=optional(state.last4) if state.set else None)


class WhatsAppCredentialsOut(CamelModel):
    configured: bool
    phone_number_id: str | None
    waba_id: str | None
    display_phone_number: str | None
    access_token: SecretStateOut
    app_secret: SecretStateOut
    verify_token: SecretStateOut
    updated_at: str | None

    @classmethod
    def from_proto(cls, view: tenant_pb2.WhatsAppCredentialsView) -> WhatsAppCredentialsOut:
        return cls(
            configured=view.configured, phone_number_id=optional(view.phone_number_id),
            waba_id=optional(view.waba_id), display_phone_number=optional(view.display_phone_number),
            access_token=SecretStateOut.from_proto(view.access_token),
            app_secret=SecretStateOut.from_proto(view.app_secret),
            verify_token=SecretStateOut.from_proto(view.verify_token),
            updated_at=optional(view.updated_at),
        )
