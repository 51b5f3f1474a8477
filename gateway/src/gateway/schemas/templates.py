"""Message template bodies: a template as GET /api/templates shows it (the same fields as the `template.updated`
event's TemplateView), its pages with the last sync's time, and a sync's counts."""

from __future__ import annotations

import json
from typing import Any

from eva.messaging.v1 import messaging_pb2
from pydantic import Field

from gateway.schemas.base import CamelModel, optional


def _components(document: str) -> list[Any]:
    if not document:
        return []
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


class TemplateOut(CamelModel):
    id: str
    name: str
    language: str = Field(description="Meta's language code, e.g. en_US")
    status: str = Field(description="APPROVED | PENDING | REJECTED | PAUSED | DISABLED | …")
    category: str | None = Field(description="UTILITY | MARKETING | AUTHENTICATION")
    quality: str | None = Field(description="GREEN | YELLOW | RED | UNKNOWN")
    parameter_format: str | None = Field(description="POSITIONAL ({{1}}) | NAMED ({{name}})")
    components: list[Any] = Field(description="Meta's components (HEADER, BODY, FOOTER, BUTTONS) as Meta lists them")
    rejected_reason: str | None = Field(description="Meta's reason when rejected")
    updated_at: str | None

    @classmethod
    def from_proto(cls, template: messaging_pb2.Template) -> TemplateOut:
        return cls(id=template.id, name=template.name, language=template.language, status=template.status,
                   category=optional(template.category), quality=optional(template.quality),
                   parameter_format=optional(template.parameter_format),
                   components=_components(template.components_json),
                   rejected_reason=optional(template.rejected_reason), updated_at=optional(template.updated_at))


class TemplatePage(CamelModel):
    items: list[TemplateOut]
    next_cursor: str | None
    synced_at: str | None = Field(description="When the templates were last synced from WhatsApp; null if never")

    @classmethod
    def from_proto(cls, page: messaging_pb2.ListTemplatesResponse) -> TemplatePage:
        return cls(items=[TemplateOut.from_proto(item) for item in page.items],
                   next_cursor=optional(page.next_cursor), synced_at=optional(page.synced_at))


class TemplateSyncOut(CamelModel):
    fetched: int = Field(description="Templates Meta listed")
    created: int
    updated: int
    removed: int = Field(description="Stored templates Meta no longer lists (deleted)")
    synced_at: str

    @classmethod
    def from_proto(cls, result: messaging_pb2.SyncTemplatesResponse) -> TemplateSyncOut:
        return cls(fetched=result.fetched, created=result.created, updated=result.updated, removed=result.removed,
                   synced_at=result.synced_at)
