"""Syncing a tenant's message templates from the Graph API: every page of
`GET {graph}/{version}/{waba_id}/message_templates?limit=100` with the tenant's access token (TenantService
.GetSendingCredentials), each template upserted by (tenant, name, language), the ones Meta no longer lists deleted,
each change announced as `template.updated` — all in one transaction per sync. SyncTemplates (admins; services
naming the tenant) runs it on demand; the periodic job syncs the tenants `due_template_syncs()` names and schedules
their next sync; `whatsapp.credentials_updated` (tenant.events.v1) registers a tenant and syncs it at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import DomainError, FailedPrecondition, Unavailable
from eva_common.identity import ADMIN_ROLES

from messaging_service.clients import SendingProfile
from messaging_service.graph_errors import GraphError
from messaging_service.inbound import Outcome
from messaging_service.metrics import TOKEN_REFUSED
from messaging_service.models import Template
from messaging_service.templates import (
    DELETED,
    TemplateRepository,
    announce,
    apply_template_update,
    changed_fields,
    due_template_syncs,
    next_sync,
)
from messaging_service.webhook import TemplateUpdate

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100
MAX_PAGES = 500  # 50,000 templates: far above Meta's per-account limit; a paging loop stops here


class SendingCredentialsSource(Protocol):
    async def sending_profile(self, *, tenant_id: str) -> SendingProfile:
        """The tenant's WhatsApp credentials (TenantService.GetSendingCredentials; the token is never logged)."""
        ...

    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None:
        """Tells the tenant service that Meta refused (or accepted again) the tenant's access token."""
        ...


class GraphTemplateClient:
    """Lists a WABA's templates, page by page. 5xx answers, timeouts and transport errors are retried (`attempts` in
    all, doubling back-off), then Unavailable WHATSAPP_UNAVAILABLE; Meta's 190 is TokenRefused (FailedPrecondition
    WHATSAPP_TOKEN_INVALID); any other refusal FailedPrecondition WHATSAPP_REQUEST_FAILED (with Meta's code)."""

    def __init__(
        self, *, http: httpx.AsyncClient, graph_url: str, api_version: str, timeout_seconds: float = 15.0,
        attempts: int = 3, backoff_seconds: float = 0.5,
    ) -> None:
        self._http = http
        self._base_url = f"{graph_url.rstrip('/')}/{api_version}"
        self._timeout = timeout_seconds
        self._attempts = attempts
        self._backoff = backoff_seconds

    async def list_templates(self, *, waba_id: str, token: str) -> list[dict[str, Any]]:
        """Every template Meta lists for the account. The next page is asked of the configured Graph URL with the
        page's `after` cursor (never of the URL in `paging.next`: the token goes to one host only)."""
        templates: list[dict[str, Any]] = []
        after: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {"limit": PAGE_LIMIT}
            if after:
                params["after"] = after
            body = await self._get(f"{self._base_url}/{waba_id}/message_templates", params=params, token=token)
            data = body.get("data")
            page = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
            templates.extend(page)
            after = _next_cursor(body.get("paging"), full_page=len(page) >= PAGE_LIMIT)
            if not after or after in seen or not page:
                return templates
            seen.add(after)
        logger.warning("template listing stopped after the maximum number of pages", extra={"pages": MAX_PAGES})
        return templates

    async def _get(self, url: str, *, params: Mapping[str, str | int], token: str) -> dict[str, Any]:
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.get(url, params=params, headers={"Authorization": f"Bearer {token}"},
                                                timeout=self._timeout)
            except httpx.HTTPError as failure:  # timeouts and transport errors
                problem = f"{type(failure).__name__}"
            else:
                if response.status_code == 200:
                    body: Any = response.json()
                    return body if isinstance(body, dict) else {}
                refusal = GraphError.from_response(response.status_code, _json(response))
                if refusal.token_invalid:
                    raise TokenRefused(f"Meta refused the tenant's access token ({refusal.code}): {refusal.message}",
                                       code="WHATSAPP_TOKEN_INVALID")
                if response.status_code < 500:
                    raise FailedPrecondition(
                        f"the Graph API refused the template listing (HTTP {response.status_code}, code "
                        f"{refusal.code}): {refusal.message}", code="WHATSAPP_REQUEST_FAILED")
                problem = f"HTTP {response.status_code} (code {refusal.code}): {refusal.message}"
            if attempt < self._attempts:
                logger.warning("template listing failed; retrying", extra={"attempt": attempt, "problem": problem})
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        raise Unavailable(f"the Graph API did not list the templates: {problem}", code="WHATSAPP_UNAVAILABLE")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class TokenRefused(FailedPrecondition):
    """Meta refused the tenant's access token (190): WHATSAPP_TOKEN_INVALID, reported to the tenant service."""


def _next_cursor(paging: object, *, full_page: bool) -> str | None:
    """The `after` cursor of the next page: when Meta says there is one (`paging.next`), or, without `next`, after a
    full page."""
    if not isinstance(paging, dict):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    following = paging.get("next")
    if isinstance(following, str) and following:
        if isinstance(after, str) and after:
            return after
        from_url = parse_qs(urlsplit(following).query).get("after")
        return from_url[0] if from_url else None
    return after if full_page and isinstance(after, str) and after else None


def template_fields(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Graph template object as the stored row's fields; None when it names no name or language."""
    name, language = item.get("name"), item.get("language")
    if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
        return None
    quality = item.get("quality_score")
    score = quality.get("score") if isinstance(quality, dict) else None
    components = item.get("components")

    def text(key: str, *, upper: bool = True) -> str | None:
        value = item.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            return None
        return str(value).upper() if upper else str(value)

    reason = text("rejected_reason", upper=False)
    return {
        "name": name, "language": language, "meta_id": text("id", upper=False),
        "status": text("status") or "UNKNOWN", "category": text("category"),
        "quality": str(score).upper() if isinstance(score, str) and score else None,
        "parameter_format": text("parameter_format"),
        "components": [c for c in components if isinstance(c, dict)] if isinstance(components, list) else [],
        "rejected_reason": None if reason is None or reason.upper() == "NONE" else reason,
    }


@dataclass(frozen=True, slots=True)
class SyncResult:
    fetched: int
    created: int
    updated: int
    removed: int
    synced_at: datetime


class TemplateSyncer:
    def __init__(
        self, *, sessions: SessionFactory, credentials: SendingCredentialsSource, graph: GraphTemplateClient,
        events_topic: str, interval_seconds: float = 3600, batch_size: int = 50,
    ) -> None:
        self._sessions = sessions
        self._credentials = credentials
        self._graph = graph
        self._events_topic = events_topic
        self._interval = interval_seconds
        self._batch_size = batch_size

    async def sync_templates(self, *, principal: Principal, tenant_id: str = "") -> SyncResult:
        """SyncTemplates: the caller's tenant for admins, the named one for services."""
        tenant = principal.tenant_scope(tenant_id)
        if not principal.is_service:
            principal.require_role(*ADMIN_ROLES)
        return await self.sync(tenant_id=tenant)

    async def register(self, *, tenant_id: str, waba_id: str | None) -> None:
        """Enters the tenant into the periodic sync, due now."""
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await TemplateRepository(session).register(tenant_id=tenant_id, waba_id=waba_id)

    async def sync(self, *, tenant_id: str, waba_id: str | None = None) -> SyncResult:
        """Fetches every template of the tenant's account and stores them; the outcome (or the error) is recorded in
        template_syncs and the next periodic sync scheduled one interval later either way."""
        try:
            credentials = await self._credentials.sending_profile(tenant_id=tenant_id)
            account = credentials.waba_id or waba_id or await self._known_waba(tenant_id)
            if not account:
                raise FailedPrecondition("the tenant's WhatsApp Business Account id is not configured",
                                         code="WHATSAPP_NOT_CONFIGURED")
            fetched = await self._graph.list_templates(waba_id=account, token=credentials.access_token)
        except DomainError as error:
            await self._record_failure(tenant_id=tenant_id, waba_id=waba_id, error=f"{error.code}: {error.detail}")
            if isinstance(error, TokenRefused):
                await self._report_token_refused(tenant_id=tenant_id, detail=error.detail)
            raise
        if credentials.health == "unhealthy":  # Meta accepts the token again (a refusal was transient)
            await self._report_token_accepted(tenant_id=tenant_id)
        return await self._store(tenant_id=tenant_id, waba_id=account, fetched=fetched)

    async def sync_quietly(self, *, tenant_id: str, waba_id: str | None = None) -> SyncResult | None:
        """`sync`, logging instead of raising (the periodic job, webhooks and tenant events): a failed tenant stays
        recorded with its error and is tried again at its next sync."""
        try:
            return await self.sync(tenant_id=tenant_id, waba_id=waba_id)
        except Exception as error:
            logger.warning("template sync failed", extra={
                "tenant_id": tenant_id, "error": f"{type(error).__name__}: {error}"[:500]})
            return None

    async def run_once(self) -> int:
        """The periodic pass: syncs the due tenants, a batch at a time, until none is due; returns how many."""
        synced = 0
        while True:
            async with transaction(self._sessions) as session:
                due = await due_template_syncs(session, batch=self._batch_size)
            for tenant_id in due:
                await self.sync_quietly(tenant_id=tenant_id)
            synced += len(due)
            if len(due) < self._batch_size:
                return synced

    async def _report_token_refused(self, *, tenant_id: str, detail: str) -> None:
        TOKEN_REFUSED.labels(tenant_id, "template_sync").inc()
        try:
            await self._credentials.report_health(tenant_id=tenant_id, healthy=False, code=190, detail=detail[:500])
        except Exception as error:  # the sync's own error is what the caller needs; this report is best effort
            logger.warning("could not report the refused access token", extra={
                "tenant_id": tenant_id, "error": f"{type(error).__name__}: {error}"[:300]})

    async def _report_token_accepted(self, *, tenant_id: str) -> None:
        try:
            await self._credentials.report_health(tenant_id=tenant_id, healthy=True)
        except Exception as error:  # best effort, like the refusal
            logger.warning("could not report the accepted access token", extra={
                "tenant_id": tenant_id, "error": f"{type(error).__name__}: {error}"[:300]})

    async def _known_waba(self, tenant_id: str) -> str | None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            state = await TemplateRepository(session).sync_state(tenant_id=tenant_id)
        return state.waba_id if state else None

    async def _record_failure(self, *, tenant_id: str, waba_id: str | None, error: str) -> None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await TemplateRepository(session).finish_sync(
                tenant_id=tenant_id, waba_id=waba_id, synced_at=None,
                next_sync_at=next_sync(datetime.now(UTC), self._interval), error=error[:1000])

    async def _store(self, *, tenant_id: str, waba_id: str, fetched: list[dict[str, Any]]) -> SyncResult:
        incoming: dict[tuple[str, str], dict[str, Any]] = {}
        for item in fetched:
            fields = template_fields(item)
            if fields is not None:
                incoming[(fields["name"], fields["language"])] = fields | {"waba_id": waba_id}
        created = updated = removed = 0
        now = datetime.now(UTC)
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = TemplateRepository(session)
            await repository.lock_tenant(tenant_id=tenant_id)
            stored = {(row.name, row.language): row for row in await repository.all(tenant_id=tenant_id)}
            for key, fields in incoming.items():
                row = stored.get(key)
                if row is None:
                    row = await repository.add(Template(tenant_id=tenant_id, **fields, created_at=now,
                                                        updated_at=now))
                    created += 1
                elif changed_fields(row, fields):
                    for name, value in fields.items():
                        setattr(row, name, value)
                    row.updated_at = now
                    session.add(row)
                    await session.flush()
                    updated += 1
                else:
                    continue
                await announce(session, row, events_topic=self._events_topic)
            for key, row in stored.items():
                if key not in incoming:
                    await announce(session, row, events_topic=self._events_topic, status=DELETED)
                    await repository.delete(row)
                    removed += 1
            await repository.finish_sync(tenant_id=tenant_id, waba_id=waba_id, synced_at=now,
                                         next_sync_at=next_sync(now, self._interval), error=None)
        logger.info("templates synced", extra={"tenant_id": tenant_id, "fetched": len(fetched),
                                               "templates_created": created, "templates_updated": updated,
                                               "templates_removed": removed})
        return SyncResult(fetched=len(fetched), created=created, updated=updated, removed=removed, synced_at=now)


class TemplateWebhooks:
    """Meta's template webhooks (status with the rejected reason, category, quality): each applied to its stored
    template in its own transaction and announced. A template not stored here is never invented: its tenant is
    synced instead, once per delivery."""

    def __init__(self, *, sessions: SessionFactory, syncer: TemplateSyncer, events_topic: str) -> None:
        self._sessions = sessions
        self._syncer = syncer
        self._events_topic = events_topic

    async def apply(self, tenant_id: str, updates: Sequence[TemplateUpdate]) -> list[str]:
        outcomes: list[str] = []
        unknown: list[TemplateUpdate] = []
        for update in updates:
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                applied = await apply_template_update(session, tenant_id=tenant_id, update=update,
                                                      events_topic=self._events_topic)
            if applied.unknown:
                unknown.append(update)
                outcomes.append(Outcome.TEMPLATE_UNKNOWN.value)
            else:
                outcomes.append((Outcome.TEMPLATE_UNCHANGED if applied.template is None
                                 else Outcome.TEMPLATE_UPDATED).value)
        if unknown:
            waba_id = next((update.waba_id for update in unknown if update.waba_id), None)
            logger.info("template webhook for a template not stored; syncing the tenant",
                        extra={"tenant_id": tenant_id, "template": unknown[0].name, "meta_id": unknown[0].meta_id})
            await self._syncer.register(tenant_id=tenant_id, waba_id=waba_id)
            await self._syncer.sync_quietly(tenant_id=tenant_id, waba_id=waba_id)
        return outcomes
