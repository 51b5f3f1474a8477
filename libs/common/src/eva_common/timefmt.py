"""RFC 3339 timestamps as every API shows them: UTC, millisecond precision, `Z` (`2026-12-06T10:51:21.123Z`),
written by eva_events.times.rfc3339 (the events' `Instant` fields use the same function) and read here.

One fixed width, so timestamps sort as text in time order; `parse_rfc3339` (or `datetime.fromisoformat`) reads them
back. Sub-millisecond digits are dropped (truncated, never rounded up past the real time). proto3 has no null
string: an absent time is "".
"""

from __future__ import annotations

from datetime import UTC, datetime

from eva_events.times import rfc3339

from eva_common.errors import InvalidArgument

__all__ = ["parse_rfc3339", "rfc3339"]


def parse_rfc3339(
    text: str, *, field: str, code: str = "VALIDATION_FAILED", naive_utc: bool = False
) -> datetime | None:
    """The RFC 3339 timestamp a request gives in `field`, in UTC; None when it is empty. Anything else is
    InvalidArgument `code`, and so is a time without an offset unless `naive_utc` reads it as UTC."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.endswith("z"):  # RFC 3339 allows a lower-case `z` (and `t`, which fromisoformat takes)
        stripped = stripped[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidArgument(f"{field} must be an RFC 3339 timestamp", code=code) from None
    if moment.tzinfo is None:
        if not naive_utc:
            raise InvalidArgument(f"{field} needs a UTC offset (e.g. Z)", code=code)
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
