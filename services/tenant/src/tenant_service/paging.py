"""RFC 3339 times from requests (keyset cursors and page sizes are eva_common.paging's)."""

from __future__ import annotations

from datetime import UTC, datetime

from eva_common.errors import InvalidArgument


def parse_time(value: str, *, field: str) -> datetime | None:
    """An RFC 3339 timestamp (a missing offset means UTC); None when empty."""
    text = value.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{field} must be an RFC 3339 timestamp", code="INVALID_TIME") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
