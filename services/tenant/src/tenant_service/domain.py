"""What the tenant use cases take and return, and the validation of what callers send."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument
from eva_events.tenant import HEALTHY, READ_RECEIPTS, READ_RECEIPTS_ON_READ

TENANT_ACTIVE = "active"
TENANT_SUSPENDED = "suspended"
TENANT_STATUSES = (TENANT_ACTIVE, TENANT_SUSPENDED)
DEFAULT_PLAN = "starter"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_LOCALE = "en"
DEFAULT_READ_RECEIPTS = READ_RECEIPTS_ON_READ
MAX_THROUGHPUT_MPS = 1000  # Meta's highest tier; 0 means the default for the number's kind
MAX_HEALTH_DETAIL_LENGTH = 500

MAX_NAME_LENGTH = 200
MAX_QUERY_LENGTH = 100
_PLAN_CODE = re.compile(r"^[a-z0-9_-]{1,32}$")
SECRET_FIELDS = ("access_token", "app_secret", "verify_token")
MIN_SECRET_LENGTH = 8
MAX_SECRET_LENGTH = {"access_token": 4096, "app_secret": 256, "verify_token": 256}
_DIGITS = re.compile(r"^[0-9]{1,32}$")
_DISPLAY_PHONE = re.compile(r"^[0-9+() .-]{0,32}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_NO_SPACE_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True, slots=True)
class TenantView:
    id: str
    name: str
    slug: str
    status: str
    plan: str
    timezone: str
    locale: str
    created_at: datetime
    read_receipts: str = DEFAULT_READ_RECEIPTS


@dataclass(frozen=True, slots=True)
class TenantPage:
    items: list[TenantView]
    next_cursor: str = ""


@dataclass(frozen=True, slots=True)
class TenantFilter:
    """ListTenants filters: a status, and a case-insensitive text found in the name or the slug."""

    status: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """UpdateTenant: only the fields given are changed."""

    name: str | None = None
    timezone: str | None = None
    locale: str | None = None
    read_receipts: str | None = None


@dataclass(frozen=True, slots=True)
class SecretState:
    set: bool
    last4: str


@dataclass(frozen=True, slots=True)
class HealthView:
    """Whether Meta accepts the number's access token: unhealthy with Meta's error code and detail (e.g. 190)."""

    status: str = HEALTHY
    code: int | None = None
    detail: str | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class CredentialsView:
    configured: bool
    phone_number_id: str = ""
    waba_id: str = ""
    display_phone_number: str = ""
    access_token: SecretState = SecretState(set=False, last4="")
    app_secret: SecretState = SecretState(set=False, last4="")
    verify_token: SecretState = SecretState(set=False, last4="")
    updated_at: datetime | None = None
    coexistence: bool = False
    throughput_mps: int = 0
    health: HealthView = HealthView()


@dataclass(frozen=True, slots=True)
class HealthReport:
    """ReportWhatsAppHealth: what the sending service saw (unhealthy: Meta's error code and detail)."""

    tenant_id: str
    healthy: bool
    code: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CredentialsInput:
    """A PutWhatsAppCredentials request; an empty secret means 'keep the stored one'."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str = ""
    access_token: str = ""
    app_secret: str = ""
    verify_token: str = ""
    coexistence: bool | None = None  # None: unchanged (false on the first set)
    throughput_mps: int | None = None  # None: unchanged (0, the default, on the first set)

    def __repr__(self) -> str:  # never let a secret reach a log line through repr()
        return f"CredentialsInput(phone_number_id={self.phone_number_id!r}, waba_id={self.waba_id!r})"

    def secret(self, field: str) -> str:
        value: str = getattr(self, field)
        return value


@dataclass(frozen=True, slots=True)
class PhoneResolution:
    found: bool
    tenant_id: str = ""
    tenant_status: str = ""
    app_secret: str = ""

    def __repr__(self) -> str:
        return f"PhoneResolution(found={self.found}, tenant_id={self.tenant_id!r})"


@dataclass(frozen=True, slots=True)
class VerifyTokenCheck:
    valid: bool
    tenant_id: str = ""


@dataclass(frozen=True, slots=True)
class SendingCredentials:
    tenant_id: str
    phone_number_id: str
    access_token: str
    waba_id: str = ""
    display_phone_number: str = ""
    coexistence: bool = False
    throughput_mps: int = 0
    tenant_status: str = TENANT_ACTIVE
    read_receipts: str = DEFAULT_READ_RECEIPTS
    health: str = HEALTHY

    def __repr__(self) -> str:
        return f"SendingCredentials(tenant_id={self.tenant_id!r}, phone_number_id={self.phone_number_id!r})"


def last4(secret: str) -> str:
    return secret[-4:]


def clean_tenant_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidArgument("the tenant name is required", code="TENANT_NAME_REQUIRED")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"the tenant name is longer than {MAX_NAME_LENGTH} characters", code="TENANT_NAME_TOO_LONG"
        )
    return cleaned


def clean_timezone(timezone: str) -> str:
    value = timezone.strip() or DEFAULT_TIMEZONE
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {value!r}", code="INVALID_TIMEZONE") from None
    return value


def clean_locale(locale: str) -> str:
    value = locale.strip() or DEFAULT_LOCALE
    if len(value) > 35 or not _LOCALE.match(value):
        raise InvalidArgument(f"invalid locale {value!r}", code="INVALID_LOCALE")
    return value


def clean_credentials(data: CredentialsInput, *, first_set: bool) -> CredentialsInput:
    """Trims and checks the fields; on the first set every secret is required."""
    phone_number_id = data.phone_number_id.strip()
    waba_id = data.waba_id.strip()
    display = data.display_phone_number.strip()
    if not _DIGITS.match(phone_number_id):
        raise InvalidArgument("phone_number_id must be Meta's numeric phone number id", code="INVALID_PHONE_NUMBER_ID")
    if not _DIGITS.match(waba_id):
        raise InvalidArgument("waba_id must be Meta's numeric WhatsApp Business Account id", code="INVALID_WABA_ID")
    if not _DISPLAY_PHONE.match(display):
        raise InvalidArgument("display_phone_number may hold only digits, spaces and + ( ) . -",
                              code="INVALID_DISPLAY_PHONE_NUMBER")
    secrets: dict[str, str] = {}
    for field in SECRET_FIELDS:
        value = data.secret(field).strip()
        if not value:
            if first_set:
                raise InvalidArgument(f"{field} is required the first time credentials are set",
                                      code="MISSING_SECRET")
        elif not (MIN_SECRET_LENGTH <= len(value) <= MAX_SECRET_LENGTH[field]) or not _NO_SPACE_PRINTABLE.match(value):
            limit = MAX_SECRET_LENGTH[field]
            raise InvalidArgument(
                f"{field} must be {MIN_SECRET_LENGTH} to {limit} printable characters without spaces",
                code="INVALID_SECRET",
            )
        secrets[field] = value
    if data.throughput_mps is not None and not 0 <= data.throughput_mps <= MAX_THROUGHPUT_MPS:
        raise InvalidArgument(
            f"throughput_mps must be 0 (the number's default) to {MAX_THROUGHPUT_MPS}", code="INVALID_THROUGHPUT"
        )
    return CredentialsInput(phone_number_id=phone_number_id, waba_id=waba_id, display_phone_number=display,
                            coexistence=data.coexistence, throughput_mps=data.throughput_mps, **secrets)


def clean_read_receipts(value: str) -> str:
    cleaned = value.strip().lower()
    if cleaned not in READ_RECEIPTS:
        raise InvalidArgument(f"read_receipts must be one of {', '.join(READ_RECEIPTS)}",
                              code="INVALID_READ_RECEIPTS")
    return cleaned


def clean_health_detail(detail: str) -> str | None:
    """Meta's error message as reported, on one line and bounded; None when empty."""
    text = " ".join(detail.split())[:MAX_HEALTH_DETAIL_LENGTH]
    return text or None


def clean_status(status: str) -> str:
    value = status.strip().lower()
    if value not in TENANT_STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(TENANT_STATUSES)}", code="INVALID_STATUS")
    return value


def clean_tenant_filter(*, status: str, q: str) -> TenantFilter:
    text = " ".join(q.split())
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgument(f"q is longer than {MAX_QUERY_LENGTH} characters", code="INVALID_QUERY")
    return TenantFilter(status=clean_status(status) if status.strip() else None, q=text or None)


def clean_plan_code(plan: str) -> str:
    """The shape of a plan code (whether it exists is the plans table's answer)."""
    value = plan.strip().lower() or DEFAULT_PLAN
    if not _PLAN_CODE.match(value):
        raise InvalidArgument(f"unknown plan {value!r}", code="INVALID_PLAN")
    return value


def clean_tenant_changes(changes: TenantChanges) -> TenantChanges:
    """Validates the fields given; an empty timezone or locale is refused (it would not mean 'keep')."""
    timezone = locale = None
    if changes.timezone is not None:
        if not changes.timezone.strip():
            raise InvalidArgument("timezone must not be empty", code="INVALID_TIMEZONE")
        timezone = clean_timezone(changes.timezone)
    if changes.locale is not None:
        if not changes.locale.strip():
            raise InvalidArgument("locale must not be empty", code="INVALID_LOCALE")
        locale = clean_locale(changes.locale)
    name = clean_tenant_name(changes.name) if changes.name is not None else None
    read_receipts = clean_read_receipts(changes.read_receipts) if changes.read_receipts is not None else None
    return TenantChanges(name=name, timezone=timezone, locale=locale, read_receipts=read_receipts)
