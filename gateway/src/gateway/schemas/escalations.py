"""Escalation bodies: an escalation, its pages, raising and resolving one. An escalation is, field for field,
eva_events.conversation.EscalationView, which `escalation.raised` / `escalation.updated` (and Socket.io's
`escalation:raised` / `escalation:updated`) carry."""

from __future__ import annotations

from typing import Annotated, Literal

from eva.conversation.v1 import conversation_pb2
from pydantic import Field, StringConstraints

from gateway.schemas.base import CamelModel, optional
from gateway.schemas.conversation import Priority

EscalationStatus = Literal["open", "acknowledged", "resolved"]


class EscalationOut(CamelModel):
    id: str
    tenant_id: str
    conversation_id: str
    reason: str
    priority: str
    status: str
    raised_by: str | None
    acknowledged_by: str | None
    resolved_by: str | None
    note: str | None
    created_at: str | None
    acknowledged_at: str | None
    resolved_at: str | None

    @classmethod
    def from_proto(cls, escalation: conversation_pb2.Escalation) -> EscalationOut:
        return cls(
            id=escalation.id, tenant_id=escalation.tenant_id, conversation_id=escalation.conversation_id,
            reason=escalation.reason, priority=escalation.priority, status=escalation.status,
            raised_by=optional(escalation.raised_by), acknowledged_by=optional(escalation.acknowledged_by),
            resolved_by=optional(escalation.resolved_by), note=optional(escalation.note),
            created_at=optional(escalation.created_at), acknowledged_at=optional(escalation.acknowledged_at),
            resolved_at=optional(escalation.resolved_at),
        )


class EscalationPage(CamelModel):
    items: list[EscalationOut]
    next_cursor: str | None


class EscalationCreateIn(CamelModel):
    conversation_id: str = Field(min_length=1, max_length=128)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    priority: Priority = "normal"

    def to_proto(self) -> conversation_pb2.RaiseEscalationRequest:
        return conversation_pb2.RaiseEscalationRequest(conversation_id=self.conversation_id, reason=self.reason,
                                                       priority=self.priority)


class EscalationResolveIn(CamelModel):
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None

    def to_proto(self, escalation_id: str) -> conversation_pb2.ResolveEscalationRequest:
        return conversation_pb2.ResolveEscalationRequest(escalation_id=escalation_id, note=self.note or "")
