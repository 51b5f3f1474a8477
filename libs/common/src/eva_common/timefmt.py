"""RFC 3339 timestamps as every API shows them: UTC, millisecond precision, `Z` (`2026-12-06T10:51:21.123Z`).

One fixed width, so timestamps sort as text in time order; `datetime.fromisoformat` reads them back. Sub-millisecond
digits are dropped (truncated, never rounded up past the real time). proto3 has no null string: an absent time is "".
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | None) -> str:
    """`moment` in UTC with milliseconds and a `Z` (a naive datetime is taken to be UTC already); "" for None."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
