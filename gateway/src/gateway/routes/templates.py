"""/api/templates: the tenant's WhatsApp message templates (MessagingService), synced from Meta. Listing takes API
keys with `messages:read`; a sync on demand is for admins."""

from __future__ import annotations

from typing import Annotated

from eva.messaging.v1 import messaging_pb2
from eva_common.identity import ADMIN_ROLES
from fastapi import APIRouter, Query

from gateway.deps import ClientsDep, MessagesReaderDep, PrincipalDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, PageLimit
from gateway.schemas.base import DEFAULT_PAGE_SIZE
from gateway.schemas.templates import TemplatePage, TemplateSyncOut

router = APIRouter(prefix="/api/templates", tags=["templates"])



@router.get("", summary="The tenant's message templates, by name and language", responses=api_problems(400, 409))
async def list_templates(
    principal: MessagesReaderDep,
    clients: ClientsDep,
    status: Annotated[str | None, Query(min_length=1, max_length=64, description="APPROVED, PAUSED, …")] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=64, description="UTILITY, MARKETING, …")] = None,
    language: Annotated[str | None, Query(min_length=1, max_length=64, description="e.g. en_US")] = None,
    quality: Annotated[str | None, Query(min_length=1, max_length=64, description="GREEN, YELLOW, RED")] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=512, description="Part of the name")] = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> TemplatePage:
    page: messaging_pb2.ListTemplatesResponse = await clients.call(
        clients.messaging.ListTemplates,
        messaging_pb2.ListTemplatesRequest(status=status or "", category=category or "", language=language or "",
                                           quality=quality or "", name=name or "", limit=limit, cursor=cursor or ""),
        token=principal.token,
    )
    return TemplatePage.from_proto(page)


@router.post("/sync", summary="Sync the templates from WhatsApp now (admins)", responses=api_problems(409, 422))
async def sync_templates(principal: PrincipalDep, clients: ClientsDep) -> TemplateSyncOut:
    principal.require_role(*ADMIN_ROLES)
    result: messaging_pb2.SyncTemplatesResponse = await clients.call(
        clients.messaging.SyncTemplates, messaging_pb2.SyncTemplatesRequest(), token=principal.token)
    return TemplateSyncOut.from_proto(result)
