"""Audit log entries as stored and listed, and the ListAuditLogs filters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eva_common.errors import InvalidArgument
from eva_common.timefmt import parse_rfc3339

MAX_FILTER_LENGTH = 200
MAX_DETAILS_CHARS = 16_384
PLATFORM_TENANT_SLUG = "platform"  # entries with no tenant (e.g. a failed login for an unknown email) go there


@dataclass(frozen=True, slots=True)
class AuditLogView:
    id: str
    tenant_id: str
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    from_time: datetime | None = None  # inclusive
    to_time: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditLogView]
    next_cursor: str = ""


def _exact(value: str, field: str) -> str | None:
    text = value.strip()
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_FILTER_LENGTH} characters", code="INVALID_FILTER")
    return text or None


def clean_audit_filter(
    *, actor_id: str, action: str, target_type: str, target_id: str, from_time: str, to_time: str
) -> AuditFilter:
    start = parse_rfc3339(from_time, field="from_time", code="INVALID_TIME", naive_utc=True)
    end = parse_rfc3339(to_time, field="to_time", code="INVALID_TIME", naive_utc=True)
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("to_time must be after from_time", code="INVALID_TIME_RANGE")
    return AuditFilter(
        actor_id=_exact(actor_id, "actor_id"), action=_exact(action, "action"),
        target_type=_exact(target_type, "target_type"), target_id=_exact(target_id, "target_id"),
        from_time=start, to_time=end,
    )


def bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """The details as given, unless they are too large to keep (then only that fact is kept)."""
    size = len(json.dumps(details, default=str))
    if size > MAX_DETAILS_CHARS:
        return {"truncated": True, "originalSize": size}
    return details
