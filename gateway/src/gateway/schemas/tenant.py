"""Tenant bodies: the tenant itself (created and listed by super admins, changed by its admins) and its WhatsApp
credentials (secrets are write-only)."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Annotated, Literal

from eva.tenant.v1 import tenant_pb2
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from gateway.schemas.base import CamelModel, optional, require_some_field

MetaId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

_TIMEZONE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    """An IANA time zone name (checked against the tz database when the system has one)."""
    known = _known_timezones()
    if not _TIMEZONE_SHAPE.match(value) or (known and value not in known):
        raise ValueError("not an IANA time zone (e.g. Europe/Lisbon)")
    return value


TenantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)]
Timezone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_timezone),
                     Field(examples=["Europe/Lisbon"])]
Locale = Annotated[str, StringConstraints(strip_whitespace=True, max_length=35,
                                          pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
                   Field(examples=["pt-PT"])]
Plan = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$"),
                 Field(examples=["trial"])]


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


ReadReceipts = Literal["on_read", "never"]


class OwnTenantOut(TenantOut):
    """The caller's own tenant, with the settings its users work by."""

    read_receipts: str = Field(description="When Eva sends Meta's read receipts (and typing indicators) for guests' "
                                           "messages: `on_read` (an attendant reads them) or `never`")

    @classmethod
    def from_proto(cls, tenant: tenant_pb2.Tenant) -> OwnTenantOut:
        base = TenantOut.from_proto(tenant).model_dump()
        return cls(**base, read_receipts=tenant.read_receipts or "on_read")


class TenantPage(CamelModel):
    items: list[TenantOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: tenant_pb2.ListTenantsResponse) -> TenantPage:
        return cls(items=[TenantOut.from_proto(item) for item in page.items], next_cursor=optional(page.next_cursor))


class TenantCreateIn(CamelModel):
    name: TenantName
    plan: Plan | None = Field(default=None, description="The plan's name; the platform's default when omitted")
    timezone: Timezone | None = None
    locale: Locale | None = None

    def to_proto(self) -> tenant_pb2.AdminCreateTenantRequest:
        return tenant_pb2.AdminCreateTenantRequest(name=self.name, plan=self.plan or "",
                                                   timezone=self.timezone or "", locale=self.locale or "")


class TenantUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given."""

    name: TenantName | None = None
    timezone: Timezone | None = None
    locale: Locale | None = None
    read_receipts: ReadReceipts | None = Field(
        default=None, description="`on_read`: Meta's read receipts and typing indicators when an attendant reads the "
                                  "guest's messages; `never`: none")

    @model_validator(mode="after")
    def _changes_something(self) -> TenantUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self) -> tenant_pb2.UpdateTenantRequest:
        changes = {name: value for name in ("name", "timezone", "locale", "read_receipts")
                   if (value := getattr(self, name)) is not None}
        return tenant_pb2.UpdateTenantRequest(**changes)


class WhatsAppCredentialsIn(CamelModel):
    phone_number_id: MetaId = Field(description="Meta's phone number id (digits)")
    waba_id: MetaId = Field(description="The WhatsApp Business Account id (digits)")
    access_token: Secret = Field(description="Graph API access token; stored encrypted, never returned")
    app_secret: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Meta app secret that signs the webhooks; stored encrypted, never returned")
    verify_token: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="The webhook verify token; never returned")
    display_phone_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    coexistence: bool | None = Field(
        default=None, description="The number is also used in the WhatsApp Business app (Meta caps it at 20 "
                                  "messages/s); unchanged when omitted (false at first)")
    throughput_mps: Annotated[int, Field(ge=0, le=1000)] | None = Field(
        default=None, description="Messages per second Eva may send from this number; 0: the default for the "
                                  "number's kind (80, or 20 with coexistence); unchanged when omitted (0 at first)")

    def to_proto(self) -> tenant_pb2.PutWhatsAppCredentialsRequest:
        request = tenant_pb2.PutWhatsAppCredentialsRequest(
            phone_number_id=self.phone_number_id, waba_id=self.waba_id, access_token=self.access_token,
            app_secret=self.app_secret, verify_token=self.verify_token,
            display_phone_number=self.display_phone_number or "",
        )
        if self.coexistence is not None:
            request.coexistence = self.coexistence
        if self.throughput_mps is not None:
            request.throughput_mps = self.throughput_mps
        return request


class SecretStateOut(CamelModel):
    set: bool
    last4: str | None

    @classmethod
    def from_proto(cls, state: tenant_pb2.SecretState) -> SecretStateOut:
        return cls(set=state.set, last4=optional(state.last4) if state.set else None)


class WhatsAppHealthOut(CamelModel):
    status: str = Field(description="healthy | unhealthy (Meta refused the access token: put a new one)")
    code: int | None = Field(description="Meta's error code that made it unhealthy, e.g. 190; null when healthy")
    detail: str | None = Field(description="Meta's error message, e.g. \"access token expired\"")
    since: str | None = Field(description="When the number entered this status")

    @classmethod
    def from_proto(cls, health: tenant_pb2.WhatsAppHealth) -> WhatsAppHealthOut:
        return cls(status=health.status, code=health.code or None, detail=optional(health.detail),
                   since=optional(health.since))


class WhatsAppCredentialsOut(CamelModel):
    configured: bool
    phone_number_id: str | None
    waba_id: str | None
    display_phone_number: str | None
    access_token: SecretStateOut
    app_secret: SecretStateOut
    verify_token: SecretStateOut
    updated_at: str | None
    coexistence: bool = Field(description="The number is also used in the WhatsApp Business app")
    throughput_mps: int = Field(description="Messages per second Eva may send; 0: the default for the number's kind "
                                            "(80, or 20 with coexistence)")
    health: WhatsAppHealthOut | None = Field(description="Whether Meta accepts the access token; null when not "
                                                         "configured")

    @classmethod
    def from_proto(cls, view: tenant_pb2.WhatsAppCredentialsView) -> WhatsAppCredentialsOut:
        return cls(
            configured=view.configured, phone_number_id=optional(view.phone_number_id),
            waba_id=optional(view.waba_id), display_phone_number=optional(view.display_phone_number),
            access_token=SecretStateOut.from_proto(view.access_token),
            app_secret=SecretStateOut.from_proto(view.app_secret),
            verify_token=SecretStateOut.from_proto(view.verify_token),
            updated_at=optional(view.updated_at),
            coexistence=view.coexistence,
            throughput_mps=view.throughput_mps,
            health=WhatsAppHealthOut.from_proto(view.health) if view.HasField("health") else None,
        )
