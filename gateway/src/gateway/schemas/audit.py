"""Audit log bodies: append-only entries of every mutating action, and pages of them."""

from __future__ import annotations

from typing import Any

from eva.tenant.v1 import tenant_pb2
from pydantic import Field

from gateway.schemas.base import CamelModel, optional, parse_json_object


class AuditLogOut(CamelModel):
    id: str
    actor_type: str = Field(description="user | api_key | service | anonymous")
    actor_id: str | None
    action: str = Field(examples=["user.created"])
    target_type: str | None
    target_id: str | None
    outcome: str = Field(description="success | failure")
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    occurred_at: str

    @classmethod
    def from_proto(cls, entry: tenant_pb2.AuditLog) -> AuditLogOut:
        return cls(
            id=entry.id, actor_type=entry.actor_type, actor_id=optional(entry.actor_id), action=entry.action,
            target_type=optional(entry.target_type), target_id=optional(entry.target_id), outcome=entry.outcome,
            ip=optional(entry.ip), user_agent=optional(entry.user_agent), request_id=optional(entry.request_id),
            details=parse_json_object(entry.details_json), occurred_at=entry.occurred_at,
        )


class AuditLogPage(CamelModel):
    items: list[AuditLogOut]
    next_cursor: str | None

    @classmethod
    def from_proto(cls, page: tenant_pb2.ListAuditLogsResponse) -> AuditLogPage:
        return cls(items=[AuditLogOut.from_proto(item) for item in page.items],
                   next_cursor=optional(page.next_cursor))
