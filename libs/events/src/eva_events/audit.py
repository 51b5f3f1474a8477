"""Audit events (topic audit.events.v1, keyed by tenant id): every mutating action anywhere, logins and failed
logins included. The tenant service stores them append-only."""

from __future__ import annotations

from typing import Any, Literal

from eva_events.envelope import CamelModel

AUDIT_RECORDED = "audit.recorded"

ActorType = Literal["user", "api_key", "service", "anonymous"]


class AuditEntry(CamelModel):
    actor_type: ActorType
    actor_id: str | None = None
    action: str  # e.g. "user.created", "auth.login_failed", "whatsapp.credentials_updated"
    target_type: str | None = None
    target_id: str | None = None
    outcome: Literal["success", "failure"] = "success"
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = {}
