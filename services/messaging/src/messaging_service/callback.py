"""`biz_opaque_callback_data` (reference §12): every send carries Eva's message id, and Meta echoes it in the send's
statuses, so a send whose answer was never recorded is still recognised as that message's."""

from __future__ import annotations

import uuid

from eva_common.ids import parse_id

PREFIX = "eva:"


def callback_data(message_id: uuid.UUID) -> str:
    return f"{PREFIX}{message_id}"


def message_id_of_callback(value: object) -> uuid.UUID | None:
    if isinstance(value, str) and value.startswith(PREFIX):
        return parse_id(value[len(PREFIX):])
    return None
