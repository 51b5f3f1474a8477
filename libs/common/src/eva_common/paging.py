"""Keyset pagination shared by every service: one page-size rule and one opaque cursor codec.

A cursor is the last row's sort key (its id, and the sort time for lists ordered by time), tied to one list by a
`kind`, as unpadded base64url JSON. A list resumes strictly after it, so a page costs the same however deep it is
and rows inserted meanwhile never shift the pages that follow. Anything a service did not hand out for that list
is refused with INVALID_CURSOR; a page size outside 1..MAX_PAGE_SIZE with VALIDATION_FAILED (0, proto3's "unset",
means DEFAULT_PAGE_SIZE).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 512
INVALID_CURSOR = "INVALID_CURSOR"
INVALID_PAGE_SIZE = "VALIDATION_FAILED"


def page_size(limit: int) -> int:
    """The rows a page holds: DEFAULT_PAGE_SIZE for 0, `limit` for 1..MAX_PAGE_SIZE, VALIDATION_FAILED otherwise."""
    if limit == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE_SIZE}", code=INVALID_PAGE_SIZE)
    return limit


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended in the list `kind`: the last item's id and, for lists sorted by time, its sort time."""

    kind: str
    id: str
    at: datetime | None = None

    def uuid(self) -> uuid.UUID:
        """The id as a UUID (checked by `decode_cursor(..., uuid_id=True)`)."""
        return uuid.UUID(self.id)

    def time(self) -> datetime:
        """The sort time (present in every cursor `decode_cursor(..., timed=True)` accepts)."""
        if self.at is None:
            raise invalid_cursor()
        return self.at


def invalid_cursor() -> InvalidArgument:
    return InvalidArgument("the cursor is not valid", code=INVALID_CURSOR)


def encode_cursor(position: Position) -> str:
    body = {"k": position.kind, "i": position.id}
    if position.at is not None:
        body["t"] = position.at.isoformat()
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, kind: str, timed: bool = False, uuid_id: bool = False) -> Position | None:
    """None for an empty cursor (the first page), the position for one handed out by this list (`kind`; with a
    timezone-aware sort time when `timed`, a UUID id when `uuid_id`), INVALID_CURSOR for anything else."""
    if not cursor:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        identifier, moment = body["i"], body.get("t")
        if body["k"] != kind or not isinstance(identifier, str) or not identifier:
            raise ValueError("another list's cursor")
        at = datetime.fromisoformat(moment) if timed else None
        if (at is not None and at.tzinfo is None) or (not timed and moment is not None):
            raise ValueError("wrong sort key")
        if uuid_id:
            uuid.UUID(identifier)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise invalid_cursor() from None
    return Position(kind=kind, id=identifier, at=at)
