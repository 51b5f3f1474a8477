"""API key use cases. A key is shown once; only its HMAC-SHA256 digest (under EVA_LOOKUP_HMAC_KEY) is stored, so
a presented key is found by its digest, never by scanning rows. Revoking a key also records a revocation time for
its subject (`apikey:<id>`) in Redis, so the short-lived tokens auth exchanged for it stop working at once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from eva_common.audit import API_KEY_SUBJECT_PREFIX, NO_META, Actor, AuditRecorder, RequestMeta
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from eva_common.outbox import enqueue
from eva_events.topics import AUDIT_EVENTS

from tenant_service import access, events
from tenant_service.api_keys.domain import (
    INVALID_KEY,
    MAX_ACTIVE_KEYS,
    ApiKeyInput,
    ApiKeyView,
    CreatedApiKey,
    KeyVerification,
    clean_api_key_input,
    generate_key,
    well_formed,
)
from tenant_service.api_keys.repository import ApiKeyRepository
from tenant_service.crypto import LookupHasher
from tenant_service.models import ApiKey

logger = logging.getLogger("tenant.api_keys")

LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute per key
Clock = Callable[[], datetime]


class RevocationWriter(Protocol):
    async def revoke(self, subject: str, *, at_ms: int | None = None) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def api_key_view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=row.id, tenant_id=row.tenant_id, name=row.name, prefix=row.prefix, scopes=tuple(row.scopes),
        created_by=row.created_by, created_at=row.created_at, last_used_at=row.last_used_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at,
    )


class ApiKeyService:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        lookup: LookupHasher,
        revocations: RevocationWriter,
        events_topic: str = events.TOPIC,
        audit_topic: str = AUDIT_EVENTS,
        clock: Clock = _utcnow,
    ) -> None:
        self._sessions = sessions
        self._lookup = lookup
        self._revocations = revocations
        self._topic = events_topic
        self._audit = AuditRecorder(topic=audit_topic)
        self._clock = clock

    async def create(self, *, principal: Principal, data: ApiKeyInput, meta: RequestMeta = NO_META) -> CreatedApiKey:
        tenant_id = access.tenant_admin(principal, "create API keys")
        now = self._clock()
        clean = clean_api_key_input(data, now=now)
        prefix, key = generate_key()
        row = ApiKey(
            id=str(uuid.uuid4()), tenant_id=tenant_id, name=clean.name, prefix=prefix,
            digest=self._lookup.digest(key), scopes=list(clean.scopes), created_by=principal.subject,
            created_at=now, expires_at=clean.expires_at,
        )
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = ApiKeyRepository(session)
            if await repository.count_active(now=now) >= MAX_ACTIVE_KEYS:
                raise FailedPrecondition(f"a tenant may have at most {MAX_ACTIVE_KEYS} active API keys; revoke one",
                                         code="API_KEY_LIMIT_REACHED")
            await repository.add(row)
            created = events.ApiKeyCreated(
                tenant_id=tenant_id, key_id=row.id, name=row.name, prefix=prefix, scopes=list(clean.scopes),
                expires_at=clean.expires_at, created_by=principal.subject, created_at=now,
            )
            await enqueue(session, topic=self._topic, key=tenant_id, event=events.api_key_created(created))
            await self._audit.record(
                session, tenant_id=tenant_id, actor=Actor(principal, meta), action="api_key.created",
                target_type="api_key", target_id=row.id,
                details={"name": row.name, "prefix": prefix, "scopes": list(clean.scopes),
                         "expiresAt": clean.expires_at.isoformat() if clean.expires_at else None},
            )
            view = api_key_view(row)
        logger.info("api key created", extra={"tenant_id": tenant_id, "key_id": view.id, "prefix": prefix})
        return CreatedApiKey(api_key=view, key=key)

    async def list_keys(self, *, principal: Principal, include_revoked: bool) -> list[ApiKeyView]:
        tenant_id = access.tenant_admin(principal, "list API keys")
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            rows = await ApiKeyRepository(session).listing(include_revoked=include_revoked)
        return [api_key_view(row) for row in rows]

    async def revoke(self, *, principal: Principal, key_id: str, meta: RequestMeta = NO_META) -> ApiKeyView:
        """Idempotent: revoking a revoked key returns it unchanged (and records nothing new)."""
        tenant_id = access.tenant_admin(principal, "revoke API keys")
        if not key_id.strip():
            raise InvalidArgument("api_key_id is required", code="API_KEY_ID_REQUIRED")
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = ApiKeyRepository(session)
            row = await repository.get(key_id.strip(), for_update=True)
            if row is None:  # another tenant's key is invisible here: the same answer as no key at all
                raise NotFound("API key not found", code="API_KEY_NOT_FOUND")
            first_revocation = row.revoked_at is None
            if first_revocation:
                row.revoked_at = now
                await repository.save(row)
                revoked = events.ApiKeyRevoked(tenant_id=tenant_id, key_id=row.id, revoked_at=now)
                await enqueue(session, topic=self._topic, key=tenant_id, event=events.api_key_revoked(revoked))
                await self._audit.record(
                    session, tenant_id=tenant_id, actor=Actor(principal, meta), action="api_key.revoked",
                    target_type="api_key", target_id=row.id, details={"name": row.name, "prefix": row.prefix},
                )
            view = api_key_view(row)
        revoked_at = view.revoked_at or now
        try:  # repeated on every call, so a retry after a Redis failure completes the revocation
            await self._revocations.revoke(f"{API_KEY_SUBJECT_PREFIX}{view.id}",
                                           at_ms=int(revoked_at.timestamp() * 1000))
        except Exception as error:
            logger.warning("api key revoked, but its tokens' revocation time was not written",
                           extra={"tenant_id": tenant_id, "key_id": view.id, "error": type(error).__name__})
            raise Unavailable("the key is revoked but its tokens could not be revoked yet; retry",
                              code="REVOCATION_UNAVAILABLE") from None
        if first_revocation:
            logger.info("api key revoked", extra={"tenant_id": tenant_id, "key_id": view.id})
        return view

    async def verify(self, *, principal: Principal, api_key: str) -> KeyVerification:
        """For auth's key exchange: the key's tenant, scopes and tenant status, or not valid (unknown, malformed,
        revoked or expired: one answer). A suspended tenant's key is valid with tenant_status 'suspended'."""
        principal.require_service()
        key = api_key.strip()
        if not well_formed(key):
            return INVALID_KEY
        now = self._clock()
        async with transaction(self._sessions) as session:
            found = await ApiKeyRepository(session).by_digest(self._lookup.digest(key))
        if found is None or found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
            return INVALID_KEY
        stale_before = now - LAST_USED_RESOLUTION
        if found.last_used_at is None or found.last_used_at < stale_before:
            async with transaction(self._sessions, tenant_id=found.tenant_id) as session:
                await ApiKeyRepository(session).touch(found.id, now=now, unless_used_since=stale_before)
        return KeyVerification(valid=True, key_id=found.id, tenant_id=found.tenant_id, scopes=found.scopes,
                               tenant_status=found.tenant_status)
