"""Opaque keyset cursors: the last row's sort key, base64url JSON. A list resumes strictly after it, so a page costs
the same however deep it is and rows inserted meanwhile (which sort first) never shift the pages that follow."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def page_size(limit: int) -> int:
    if limit < 0:
        raise InvalidArgument("limit cannot be negative", code="VALIDATION_FAILED")
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


def _encode(body: dict[str, str]) -> str:
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(value: str) -> dict[str, str]:
    try:
        body = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from error
    if not isinstance(body, dict):
        raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR")
    return body


@dataclass(frozen=True, slots=True)
class ActivityCursor:
    """Position in the inbox, sorted by (last_message_at DESC, id DESC)."""

    last_message_at: datetime
    conversation_id: uuid.UUID

    def encode(self) -> str:
        return _encode({"k": "conv", "t": self.last_message_at.isoformat(), "i": str(self.conversation_id)})

    @classmethod
    def decode(cls, value: str) -> ActivityCursor:
        body = _decode(value)
        try:
            cursor = cls(datetime.fromisoformat(body["t"]), uuid.UUID(body["i"]))
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from error
        if body.get("k") != "conv" or cursor.last_message_at.tzinfo is None:
            raise InvalidArgument("the cursor is not valid for this list", code="INVALID_CURSOR")
        return cursor


@dataclass(frozen=True, slots=True)
class IdCursor:
    """Position in a list sorted by id DESC (UUIDv7: newest first). `kind` ties it to one list."""

    kind: str
    last_id: uuid.UUID

    def encode(self) -> str:
        return _encode({"k": self.kind, "i": str(self.last_id)})

    @classmethod
    def decode(cls, value: str, *, kind: str) -> IdCursor:
        body = _decode(value)
        try:
            cursor = cls(str(body["k"]), uuid.UUID(body["i"]))
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from error
        if cursor.kind != kind:
            raise InvalidArgument("the cursor is not valid for this list", code="INVALID_CURSOR")
        return cursor
