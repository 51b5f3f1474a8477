"""Query and path parameters shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from eva_common.paging import MAX_CURSOR_LENGTH
from fastapi import Path, Query

from gateway.schemas.base import MAX_PAGE_SIZE

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`nextCursor` of the previous page")]
SearchText = Annotated[str | None, Query(min_length=1, max_length=200, description="Free-text search")]


def id_path(what: str) -> Any:
    return Path(min_length=1, max_length=128, description=f"The {what}'s id")


UserId = Annotated[str, id_path("user")]
TenantId = Annotated[str, id_path("tenant")]
ApiKeyId = Annotated[str, id_path("API key")]
ConversationId = Annotated[str, id_path("conversation")]
TagId = Annotated[str, id_path("tag")]
EscalationId = Annotated[str, id_path("escalation")]
ContactId = Annotated[str, id_path("contact")]
MessageId = Annotated[str, id_path("message")]
WebhookId = Annotated[str, id_path("webhook subscription")]
DeliveryId = Annotated[str, id_path("webhook delivery")]
