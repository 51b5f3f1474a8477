"""Tenant use cases: tenants (created by auth at sign-up or by super admins, administered by super admins, set up
by their admins), their WhatsApp credentials (sealed at rest, readable only by services), and the lookups
services make before a tenant is known."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from eva_common.audit import NO_META, Actor, AuditRecorder, RequestMeta
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from eva_common.outbox import enqueue
from eva_common.paging import Position, decode_cursor, encode_cursor, page_size
from eva_events.tenant import HEALTHY, UNHEALTHY, HealthStatus
from eva_events.topics import AUDIT_EVENTS
from sqlalchemy.exc import IntegrityError

from tenant_service import access, events
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.domain import (
    DEFAULT_PLAN,
    DEFAULT_READ_RECEIPTS,
    SECRET_FIELDS,
    TENANT_ACTIVE,
    TENANT_SUSPENDED,
    CredentialsInput,
    CredentialsView,
    HealthReport,
    HealthView,
    PhoneResolution,
    SecretState,
    SendingCredentials,
    TenantChanges,
    TenantPage,
    TenantView,
    VerifyTokenCheck,
    clean_credentials,
    clean_health_detail,
    clean_locale,
    clean_plan_code,
    clean_status,
    clean_tenant_changes,
    clean_tenant_filter,
    clean_tenant_name,
    clean_timezone,
    last4,
)
from tenant_service.models import Tenant, WhatsAppCredentials
from tenant_service.repository import CredentialsRepository, TenantRepository
from tenant_service.slugs import PLATFORM_SLUG, SLUG_PATTERN, slugify, unique_slug

logger = logging.getLogger("tenant.service")

SLUG_ATTEMPTS = 5
TENANT_CURSOR = "tenants"
Clock = Callable[[], datetime]
_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def tenant_view(row: Tenant) -> TenantView:
    return TenantView(
        id=row.id, name=row.name, slug=row.slug, status=row.status, plan=row.plan, timezone=row.timezone,
        locale=row.locale, created_at=row.created_at, read_receipts=row.read_receipts,
    )


def credentials_view(row: WhatsAppCredentials | None) -> CredentialsView:
    if row is None:
        return CredentialsView(configured=False)
    return CredentialsView(
        configured=True,
        phone_number_id=row.phone_number_id,
        waba_id=row.waba_id,
        display_phone_number=row.display_phone_number,
        access_token=SecretState(set=True, last4=row.access_token_last4),
        app_secret=SecretState(set=True, last4=row.app_secret_last4),
        verify_token=SecretState(set=True, last4=row.verify_token_last4),
        updated_at=row.updated_at,
        coexistence=row.coexistence,
        throughput_mps=row.throughput_mps,
        health=HealthView(status=row.health_status, code=row.health_code, detail=row.health_detail,
                          since=row.health_since),
    )


def _keep(given: _T | None, current: _T) -> _T:
    """An optional field of a request: the value given, else the current one."""
    return current if given is None else given


def _set_health(
    row: WhatsAppCredentials, *, status: HealthStatus, code: int | None, detail: str | None, since: datetime
) -> events.WhatsAppHealthChanged:
    """Moves the number to `status` (the caller checked it changes) and describes the change."""
    previous: HealthStatus = UNHEALTHY if row.health_status == UNHEALTHY else HEALTHY
    row.health_status, row.health_code, row.health_detail, row.health_since = status, code, detail, since
    return events.WhatsAppHealthChanged(tenant_id=row.tenant_id, status=status, previous_status=previous, code=code,
                                        detail=detail, since=since)


class TenantService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        secrets: SecretBox,
        lookup: LookupHasher,
        events_topic: str = events.TOPIC,
        audit_topic: str = AUDIT_EVENTS,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._topic = events_topic
        self._audit = AuditRecorder(topic=audit_topic)
        self._secrets = secrets
        self._lookup = lookup
        self._clock = clock

    # ------------------------------------------------------------------ tenants

    async def create_tenant(
        self, *, principal: Principal, name: str, timezone: str, locale: str, meta: RequestMeta = NO_META,
        platform: bool = False,
    ) -> TenantView:
        """A service (auth, at sign-up) creates a tenant on the starter plan; auth's seeding creates the platform's
        own tenant (`platform`: the reserved slug)."""
        principal.require_service()
        return await self._create(principal=principal, meta=meta, name=name, plan=DEFAULT_PLAN, timezone=timezone,
                                  locale=locale, platform=platform)

    async def admin_create_tenant(
        self, *, principal: Principal, name: str, plan: str, timezone: str, locale: str, meta: RequestMeta = NO_META
    ) -> TenantView:
        access.super_admin(principal, "create tenants")
        return await self._create(principal=principal, meta=meta, name=name, plan=clean_plan_code(plan),
                                  timezone=timezone, locale=locale)

    async def _create(
        self, *, principal: Principal, meta: RequestMeta, name: str, plan: str, timezone: str, locale: str,
        platform: bool = False,
    ) -> TenantView:
        clean_name = clean_tenant_name(name)
        clean_tz = clean_timezone(timezone)
        clean_loc = clean_locale(locale)
        base = slugify(clean_name)
        for attempt in range(1, SLUG_ATTEMPTS + 1):
            try:
                return await self._insert_tenant(principal=principal, meta=meta, name=clean_name, base_slug=base,
                                                 plan=plan, timezone=clean_tz, locale=clean_loc, platform=platform)
            except IntegrityError as error:
                if platform:
                    raise AlreadyExists("the platform tenant exists", code="PLATFORM_EXISTS") from error
                # another registration took the same slug between our read and our insert: pick again
                logger.info("tenant slug collided; retrying", extra={"slug": base, "attempt": attempt})
        raise AlreadyExists("could not find a free slug for this tenant name; try again", code="SLUG_TAKEN")

    async def _insert_tenant(
        self, *, principal: Principal, meta: RequestMeta, name: str, base_slug: str, plan: str, timezone: str,
        locale: str, platform: bool,
    ) -> TenantView:
        now = self._clock()
        tenant_id = str(uuid.uuid4())
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = TenantRepository(session)
            if await repository.plan(plan) is None:
                raise InvalidArgument(f"unknown plan {plan!r}", code="INVALID_PLAN")
            if platform:
                slug = PLATFORM_SLUG
                if PLATFORM_SLUG in await repository.taken_slugs(PLATFORM_SLUG):
                    raise AlreadyExists("the platform tenant exists", code="PLATFORM_EXISTS")
            else:
                slug = unique_slug(base_slug, await repository.taken_slugs(base_slug))
            row = Tenant(
                id=tenant_id, name=name, slug=slug, status=TENANT_ACTIVE, plan=plan, timezone=timezone,
                locale=locale, read_receipts=DEFAULT_READ_RECEIPTS, created_at=now, updated_at=now,
            )
            await repository.add(row)
            view = tenant_view(row)
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.tenant_created(view))
            await self._audit.record(
                session, tenant_id=tenant_id, actor=Actor(principal, meta), action="tenant.created",
                target_type="tenant", target_id=tenant_id, details={"name": name, "slug": slug, "plan": plan},
            )
        logger.info("tenant created", extra={"tenant_id": tenant_id, "slug": slug})
        return view

    async def get_tenant(self, *, principal: Principal, tenant_id: str) -> TenantView:
        scope = principal.tenant_scope(tenant_id)
        async with transaction(self._sessions, tenant_id=scope) as session:
            row = await TenantRepository(session).get(scope)
        if row is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        return tenant_view(row)

    async def get_tenant_by_slug(self, *, principal: Principal, slug: str) -> TenantView:
        principal.require_service()
        clean = slug.strip().lower()
        if not SLUG_PATTERN.match(clean):
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        async with transaction(self._sessions) as session:
            view = await TenantRepository(session).by_slug(clean)
        if view is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        return view

    async def list_tenants(
        self, *, principal: Principal, status: str, q: str, limit: int, cursor: str
    ) -> TenantPage:
        """Every tenant, newest first (super admins only)."""
        access.super_admin(principal, "list tenants")
        filters = clean_tenant_filter(status=status, q=q)
        size = page_size(limit)
        after = decode_cursor(cursor, kind=TENANT_CURSOR, timed=True)
        async with transaction(self._sessions) as session:
            rows = await TenantRepository(session).page(filters=filters, after=after, limit=size + 1)
        items = rows[:size]
        more = len(rows) > size
        next_cursor = encode_cursor(Position(TENANT_CURSOR, items[-1].id, items[-1].created_at)) if more else ""
        return TenantPage(items=items, next_cursor=next_cursor)

    async def set_tenant_status(
        self, *, principal: Principal, tenant_id: str, status: str, meta: RequestMeta = NO_META
    ) -> TenantView:
        """Suspends or reactivates a tenant (super admins only; never their own). Setting the current status is a
        no-op that records nothing."""
        access.super_admin(principal, "change a tenant's status")
        wanted = clean_status(status)
        if not tenant_id:
            raise InvalidArgument("tenant_id is required", code="TENANT_REQUIRED")
        if tenant_id == principal.tenant_id and wanted == TENANT_SUSPENDED:
            raise FailedPrecondition("a super admin cannot suspend their own tenant", code="CANNOT_SUSPEND_OWN_TENANT")
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = TenantRepository(session)
            row = await repository.get(tenant_id, for_update=True)
            if row is None:
                raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
            previous = row.status
            if previous == wanted:
                return tenant_view(row)
            row.status, row.updated_at = wanted, now
            await repository.save(row)
            changed = events.TenantStatusChanged(tenant_id=tenant_id, status=wanted, previous_status=previous,
                                                 changed_by=principal.subject, changed_at=now)
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.tenant_status_changed(changed))
            action = "tenant.suspended" if wanted == TENANT_SUSPENDED else "tenant.reactivated"
            await self._audit.record(session, tenant_id=tenant_id, actor=Actor(principal, meta), action=action,
                                     target_type="tenant", target_id=tenant_id,
                                     details={"previousStatus": previous, "status": wanted})
            view = tenant_view(row)
        logger.info("tenant status changed", extra={"tenant_id": tenant_id, "status": wanted})
        return view

    async def update_tenant(
        self, *, principal: Principal, changes: TenantChanges, meta: RequestMeta = NO_META
    ) -> TenantView:
        """An admin changes their own tenant's name, timezone, locale or read-receipt policy."""
        tenant_id = access.tenant_admin(principal, "change the tenant's settings")
        clean = clean_tenant_changes(changes)
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = TenantRepository(session)
            row = await repository.get(tenant_id, for_update=True)
            if row is None:
                raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
            changed = {
                field: value for field, value in
                (("name", clean.name), ("timezone", clean.timezone), ("locale", clean.locale),
                 ("read_receipts", clean.read_receipts))
                if value is not None and value != getattr(row, field)
            }
            if not changed:
                return tenant_view(row)
            for field, value in changed.items():
                setattr(row, field, value)
            row.updated_at = now
            await repository.save(row)
            updated = events.TenantUpdated(tenant_id=tenant_id, name=row.name, timezone=row.timezone,
                                           locale=row.locale, read_receipts=row.read_receipts,
                                           changed=sorted(changed), updated_at=now)
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.tenant_updated(updated))
            await self._audit.record(session, tenant_id=tenant_id, actor=Actor(principal, meta),
                                     action="tenant.updated", target_type="tenant", target_id=tenant_id,
                                     details={"changed": changed})
            view = tenant_view(row)
        return view

    # ------------------------------------------------------------------ WhatsApp credentials (tenant admins)

    async def put_whatsapp_credentials(
        self, *, principal: Principal, data: CredentialsInput, meta: RequestMeta = NO_META
    ) -> CredentialsView:
        tenant_id = access.tenant_admin(principal, "manage WhatsApp credentials")
        clean_credentials(data, first_set=False)  # shape errors before touching the database
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            tenants = TenantRepository(session)
            credentials = CredentialsRepository(session)
            if await tenants.get(tenant_id, for_update=True) is None:  # the lock serialises one tenant's updates
                raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
            existing = await credentials.for_tenant(tenant_id)
            clean = clean_credentials(data, first_set=existing is None)
            plain = {
                field: clean.secret(field) or self._open(existing, field) for field in SECRET_FIELDS
            }
            previous_phone = existing.phone_number_id if existing else None
            # every secret is (re)sealed with the active key, so one key id describes the whole row
            values = {
                "phone_number_id": clean.phone_number_id,
                "waba_id": clean.waba_id,
                "display_phone_number": clean.display_phone_number,
                **{f"{field}_ciphertext": self._seal(tenant_id, field, plain[field]) for field in SECRET_FIELDS},
                **{f"{field}_last4": last4(plain[field]) for field in SECRET_FIELDS},
                "verify_token_digest": self._lookup.digest(plain["verify_token"]),
                "key_id": self._secrets.active_key_id,
                "coexistence": _keep(clean.coexistence, existing.coexistence if existing else False),
                "throughput_mps": _keep(clean.throughput_mps, existing.throughput_mps if existing else 0),
                "updated_at": now,
            }
            recovered: events.WhatsAppHealthChanged | None = None
            if existing is None:
                row = WhatsAppCredentials.model_validate(
                    {"tenant_id": tenant_id, "created_at": now, "health_status": HEALTHY, "health_since": now,
                     **values}
                )
            else:
                row = existing
                for name, value in values.items():
                    setattr(row, name, value)
                if clean.access_token and row.health_status != HEALTHY:
                    # a new access token is the fix for a refused one: healthy again until Meta says otherwise
                    recovered = _set_health(row, status=HEALTHY, code=None, detail=None, since=now)
            try:
                # another tenant's number is invisible here; its UNIQUE constraint still refuses it
                await credentials.save(row)
            except IntegrityError:
                raise AlreadyExists(
                    "this phone number id belongs to another tenant", code="PHONE_NUMBER_TAKEN"
                ) from None
            changed = events.WhatsAppCredentialsUpdated(
                tenant_id=tenant_id,
                phone_number_id=row.phone_number_id,
                previous_phone_number_id=previous_phone,
                waba_id=row.waba_id,
                display_phone_number=row.display_phone_number,
                access_token_changed=bool(clean.access_token),
                app_secret_changed=bool(clean.app_secret),
                verify_token_changed=bool(clean.verify_token),
                coexistence=row.coexistence,
                throughput_mps=row.throughput_mps,
                updated_at=now,
            )
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.whatsapp_credentials_updated(changed))
            if recovered is not None:
                await enqueue(session, topic=self._topic, key=tenant_id,
                              event=events.whatsapp_health_changed(recovered))
            await self._audit.record(
                session, tenant_id=tenant_id, actor=Actor(principal, meta), action="whatsapp.credentials_updated",
                target_type="whatsapp_number", target_id=row.phone_number_id,
                details=changed.model_dump(mode="json", by_alias=True, exclude={"tenant_id", "updated_at"}),
            )
            view = credentials_view(row)
        logger.info(
            "whatsapp credentials stored",
            extra={"tenant_id": tenant_id, "phone_number_id": view.phone_number_id, "key_id": row.key_id},
        )
        return view

    async def get_whatsapp_credentials(self, *, principal: Principal) -> CredentialsView:
        tenant_id = access.tenant_admin(principal, "read WhatsApp credentials")
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            row = await CredentialsRepository(session).for_tenant(tenant_id)
        return credentials_view(row)

    async def report_whatsapp_health(
        self, *, principal: Principal, report: HealthReport, meta: RequestMeta = NO_META
    ) -> CredentialsView:
        """A service (messaging) reports that Meta refused the tenant's access token (e.g. 190, "access token
        expired") or accepted it again. Only a change of status is stored with its code, detail and time, announced
        as `whatsapp.health_changed` and audited; reporting the current status again changes nothing."""
        principal.require_service()
        tenant_id = principal.tenant_scope(report.tenant_id)
        status: HealthStatus = HEALTHY if report.healthy else UNHEALTHY
        code = None if report.healthy else (report.code or None)
        detail = None if report.healthy else clean_health_detail(report.detail)
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            credentials = CredentialsRepository(session)
            row = await credentials.for_tenant(tenant_id, for_update=True)
            if row is None:
                raise NotFound("the tenant has no WhatsApp credentials", code="WHATSAPP_NOT_CONFIGURED")
            if row.health_status == status:
                return credentials_view(row)
            changed = _set_health(row, status=status, code=code, detail=detail, since=now)
            await credentials.save(row)
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.whatsapp_health_changed(changed))
            await self._audit.record(
                session, tenant_id=tenant_id, actor=Actor(principal, meta), action=events.WHATSAPP_HEALTH_CHANGED,
                target_type="whatsapp_number", target_id=row.phone_number_id,
                details={"status": status, "previousStatus": changed.previous_status, "code": code,
                         "detail": detail},
            )
            view = credentials_view(row)
        logger.info("whatsapp health changed", extra={"tenant_id": tenant_id, "status": status, "code": code})
        return view

    # ------------------------------------------------------------------ lookups for services (decrypted secrets)

    async def resolve_phone_number(self, *, principal: Principal, phone_number_id: str) -> PhoneResolution:
        """The tenant owning a number, suspended or not (ingest keeps storing a suspended tenant's webhooks)."""
        principal.require_service()
        number = phone_number_id.strip()
        if not number:
            raise InvalidArgument("phone_number_id is required", code="INVALID_PHONE_NUMBER_ID")
        async with transaction(self._sessions) as session:
            owner = await CredentialsRepository(session).phone_number_owner(number)
        if owner is None:
            return PhoneResolution(found=False)
        app_secret = self._secrets.decrypt(owner.app_secret_ciphertext, tenant_id=owner.tenant_id, field="app_secret")
        return PhoneResolution(found=True, tenant_id=owner.tenant_id, tenant_status=owner.tenant_status,
                               app_secret=app_secret)

    async def resolve_waba_id(self, *, principal: Principal, waba_id: str) -> PhoneResolution:
        """The tenant owning a WhatsApp Business Account id (account-level webhook changes carry no phone number).

        A WABA claimed by two tenants routes nowhere: found=false, and the conflict is logged for an operator.
        """
        principal.require_service()
        waba = waba_id.strip()
        if not waba:
            raise InvalidArgument("waba_id is required", code="INVALID_WABA_ID")
        async with transaction(self._sessions) as session:
            owners = await CredentialsRepository(session).waba_owners(waba)
        if not owners:
            return PhoneResolution(found=False)
        if len(owners) > 1:
            logger.warning("a WABA id is claimed by more than one tenant; not routing it",
                           extra={"waba_id": waba, "tenant_ids": [owner.tenant_id for owner in owners]})
            return PhoneResolution(found=False)
        [owner] = owners
        app_secret = self._secrets.decrypt(owner.app_secret_ciphertext, tenant_id=owner.tenant_id, field="app_secret")
        return PhoneResolution(found=True, tenant_id=owner.tenant_id, tenant_status=owner.tenant_status,
                               app_secret=app_secret)

    async def check_verify_token(self, *, principal: Principal, verify_token: str) -> VerifyTokenCheck:
        """Valid when some tenant uses this token; the tenant is named only when exactly one does."""
        principal.require_service()
        if not verify_token:
            return VerifyTokenCheck(valid=False)
        async with transaction(self._sessions) as session:
            owners = await CredentialsRepository(session).verify_token_owners(self._lookup.digest(verify_token))
        if not owners:
            return VerifyTokenCheck(valid=False)
        return VerifyTokenCheck(valid=True, tenant_id=owners[0] if len(owners) == 1 else "")

    async def get_sending_credentials(self, *, principal: Principal, tenant_id: str) -> SendingCredentials:
        principal.require_service()
        scope = principal.tenant_scope(tenant_id)
        async with transaction(self._sessions, tenant_id=scope) as session:
            tenant = await TenantRepository(session).get(scope)
            row = await CredentialsRepository(session).for_tenant(scope)
        if tenant is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        if tenant.status != TENANT_ACTIVE:
            raise FailedPrecondition("the tenant is suspended", code="TENANT_SUSPENDED")
        if row is None:
            raise NotFound("the tenant has no WhatsApp credentials", code="WHATSAPP_NOT_CONFIGURED")
        return SendingCredentials(
            tenant_id=scope, phone_number_id=row.phone_number_id, access_token=self._open(row, "access_token"),
            waba_id=row.waba_id, display_phone_number=row.display_phone_number, coexistence=row.coexistence,
            throughput_mps=row.throughput_mps, tenant_status=tenant.status, read_receipts=tenant.read_receipts,
            health=row.health_status,
        )

    # ------------------------------------------------------------------ sealing

    def _seal(self, tenant_id: str, field: str, plaintext: str) -> str:
        return self._secrets.encrypt(plaintext, tenant_id=tenant_id, field=field)

    def _open(self, row: WhatsAppCredentials | None, field: str) -> str:
        if row is None:
            return ""
        sealed: str = getattr(row, f"{field}_ciphertext")
        return self._secrets.decrypt(sealed, tenant_id=row.tenant_id, field=field)
