"""Opaque keyset cursors for listing a conversation's messages by (sent_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class MessageCursor:
    conversation_id: uuid.UUID
    sent_at: datetime
    message_id: uuid.UUID

    def encode(self) -> str:
        body = {"c": str(self.conversation_id), "s": self.sent_at.isoformat(), "i": str(self.message_id)}
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str, *, conversation_id: uuid.UUID) -> MessageCursor:
        """The cursor in `value`; it must have been issued for this conversation."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = json.loads(raw)
            cursor = cls(
                conversation_id=uuid.UUID(body["c"]),
                sent_at=datetime.fromisoformat(body["s"]),
                message_id=uuid.UUID(body["i"]),
            )
        except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
            raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR") from error
        if cursor.conversation_id != conversation_id or cursor.sent_at.tzinfo is None:
            raise InvalidArgument("the cursor is not valid for this list", code="INVALID_CURSOR")
        return cursor
