"""Tenant use cases: tenants, and their WhatsApp credentials (sealed at rest, readable only by services)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from eva_common.outbox import enqueue
from sqlalchemy.exc import IntegrityError

from tenant_service import events
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.domain import (
    DEFAULT_PLAN,
    SECRET_FIELDS,
    TENANT_ACTIVE,
    CredentialsInput,
    CredentialsView,
    PhoneResolution,
    SecretState,
    SendingCredentials,
    TenantView,
    VerifyTokenCheck,
    clean_credentials,
    clean_locale,
    clean_tenant_name,
    clean_timezone,
    last4,
)
from tenant_service.models import Tenant, WhatsAppCredentials
from tenant_service.repository import CredentialsRepository, TenantRepository
from tenant_service.slugs import SLUG_PATTERN, slugify, unique_slug

logger = logging.getLogger("tenant.service")

ADMIN_ROLES = ("admin", "super_admin")
SLUG_ATTEMPTS = 5
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def tenant_view(row: Tenant) -> TenantView:
    return TenantView(
        id=row.id, name=row.name, slug=row.slug, status=row.status, plan=row.plan, timezone=row.timezone,
        locale=row.locale, created_at=row.created_at,
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
    )


class TenantService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        secrets: SecretBox,
        lookup: LookupHasher,
        events_topic: str = events.TOPIC,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._topic = events_topic
        self._secrets = secrets
        self._lookup = lookup
        self._clock = clock

    # ------------------------------------------------------------------ tenants

    async def create_tenant(self, *, principal: Principal, name: str, timezone: str, locale: str) -> TenantView:
        principal.require_service()
        clean_name = clean_tenant_name(name)
        clean_tz = clean_timezone(timezone)
        clean_loc = clean_locale(locale)
        base = slugify(clean_name)
        for attempt in range(1, SLUG_ATTEMPTS + 1):
            try:
                return await self._insert_tenant(name=clean_name, base_slug=base, timezone=clean_tz, locale=clean_loc)
            except IntegrityError:
                # another registration took the same slug between our read and our insert: pick again
                logger.info("tenant slug collided; retrying", extra={"slug": base, "attempt": attempt})
        raise AlreadyExists("could not find a free slug for this tenant name; try again", code="SLUG_TAKEN")

    async def _insert_tenant(self, *, name: str, base_slug: str, timezone: str, locale: str) -> TenantView:
        now = self._clock()
        tenant_id = str(uuid.uuid4())
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = TenantRepository(session)
            slug = unique_slug(base_slug, await repository.taken_slugs(base_slug))
            row = Tenant(
                id=tenant_id, name=name, slug=slug, status=TENANT_ACTIVE, plan=DEFAULT_PLAN, timezone=timezone,
                locale=locale, created_at=now, updated_at=now,
            )
            await repository.add(row)
            view = tenant_view(row)
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.tenant_created(view))
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
            row = await TenantRepository(session).get_by_slug(clean)
        if row is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        return tenant_view(row)

    # ------------------------------------------------------------------ WhatsApp credentials (tenant admins)

    @staticmethod
    def _admin_tenant(principal: Principal) -> str:
        if principal.is_service:
            raise PermissionDenied("only a tenant admin may manage WhatsApp credentials", code="USER_ONLY")
        principal.require_role(*ADMIN_ROLES)
        return principal.require_tenant()

    async def put_whatsapp_credentials(self, *, principal: Principal, data: CredentialsInput) -> CredentialsView:
        tenant_id = self._admin_tenant(principal)
        clean_credentials(data, first_set=False)  # shape errors before touching the database
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            tenants = TenantRepository(session)
            credentials = CredentialsRepository(session)
            if await tenants.get(tenant_id, for_update=True) is None:  # the lock serialises one tenant's updates
                raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
            existing = await credentials.for_tenant(tenant_id)
            clean = clean_credentials(data, first_set=existing is None)
            owner = await credentials.by_phone_number_id(clean.phone_number_id)
            if owner is not None and owner.tenant_id != tenant_id:
                raise AlreadyExists("this phone number id belongs to another tenant", code="PHONE_NUMBER_TAKEN")
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
                "updated_at": now,
            }
            if existing is None:
                row = WhatsAppCredentials.model_validate({"tenant_id": tenant_id, "created_at": now, **values})
            else:
                row = existing
                for name, value in values.items():
                    setattr(row, name, value)
            try:
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
                updated_at=now,
            )
            event = events.whatsapp_credentials_updated(changed)
            await enqueue(session, topic=self._topic, key=tenant_id, event=event)
            view = credentials_view(row)
        logger.info(
            "whatsapp credentials stored",
            extra={"tenant_id": tenant_id, "phone_number_id": view.phone_number_id, "key_id": row.key_id},
        )
        return view

    async def get_whatsapp_credentials(self, *, principal: Principal) -> CredentialsView:
        tenant_id = self._admin_tenant(principal)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            row = await CredentialsRepository(session).for_tenant(tenant_id)
        return credentials_view(row)

    # ------------------------------------------------------------------ lookups for services (decrypted secrets)

    async def resolve_phone_number(self, *, principal: Principal, phone_number_id: str) -> PhoneResolution:
        principal.require_service()
        number = phone_number_id.strip()
        if not number:
            raise InvalidArgument("phone_number_id is required", code="INVALID_PHONE_NUMBER_ID")
        async with transaction(self._sessions) as session:
            row = await CredentialsRepository(session).by_phone_number_id(number)
            tenant = await TenantRepository(session).get(row.tenant_id) if row is not None else None
        if row is None or tenant is None:
            return PhoneResolution(found=False)
        return PhoneResolution(
            found=True, tenant_id=row.tenant_id, tenant_status=tenant.status,
            app_secret=self._open(row, "app_secret"),
        )

    async def check_verify_token(self, *, principal: Principal, verify_token: str) -> VerifyTokenCheck:
        """Valid when some tenant uses this token; the tenant is named only when exactly one does."""
        principal.require_service()
        if not verify_token:
            return VerifyTokenCheck(valid=False)
        async with transaction(self._sessions) as session:
            rows = await CredentialsRepository(session).by_verify_token_digest(self._lookup.digest(verify_token))
        if not rows:
            return VerifyTokenCheck(valid=False)
        return VerifyTokenCheck(valid=True, tenant_id=rows[0].tenant_id if len(rows) == 1 else "")

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
            tenant_id=scope, phone_number_id=row.phone_number_id, access_token=self._open(row, "access_token")
        )

    # ------------------------------------------------------------------ sealing

    def _seal(self, tenant_id: str, field: str, plaintext: str) -> str:
        return self._secrets.encrypt(plaintext, tenant_id=tenant_id, field=field)

    def _open(self, row: WhatsAppCredentials | None, field: str) -> str:
        if row is None:
            return ""
        sealed: str = getattr(row, f"{field}_ciphertext")
        return self._secrets.decrypt(sealed, tenant_id=row.tenant_id, field=field)
