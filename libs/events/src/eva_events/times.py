"""How every time leaves Eva, in events as in the REST API: RFC 3339 in UTC with milliseconds and a `Z`
(`2026-12-06T10:51:21.123Z`). One fixed width, so timestamps sort as text in time order.

`Instant` is the type of every datetime field of an event model: it serializes to JSON through `rfc3339`, so a
Socket.io event or an n8n payload shows a time exactly as the REST object does. eva_common.timefmt (the services'
gRPC mappers and the gateway) uses the same function.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def rfc3339(moment: datetime | None) -> str:
    """`moment` in UTC with milliseconds and a `Z` (a naive datetime is taken to be UTC already); "" for None.
    Sub-millisecond digits are dropped (truncated, never rounded up past the real time)."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


Instant = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
