"""Keyset pagination: opaque cursors over (timestamp, id), page sizes, and RFC 3339 times from requests."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from eva_common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last item's sort timestamp and id (the next page starts strictly after it)."""

    at: datetime
    id: str


def page_size(limit: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if limit < 0:
        raise InvalidArgument("limit must not be negative", code="INVALID_LIMIT")
    return min(limit or default, maximum)


def encode_cursor(position: Position) -> str:
    raw = json.dumps({"t": position.at.isoformat(), "i": position.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position | None:
    """None for an empty cursor (the first page); INVALID_CURSOR for anything this service did not hand out."""
    if not cursor:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(data["t"])
        identifier = data["i"]
        if at.tzinfo is None or not isinstance(identifier, str) or not identifier:
            raise ValueError("incomplete")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from None
    return Position(at=at, id=identifier)


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
