import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eva_common.errors import InvalidArgument
from eva_common.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR_LENGTH,
    MAX_PAGE_SIZE,
    Position,
    decode_cursor,
    encode_cursor,
    page_size,
)


def raw_cursor(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_page_size_defaults_when_unset_and_keeps_one_to_the_maximum() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE == 50
    assert page_size(1) == 1
    assert page_size(MAX_PAGE_SIZE) == MAX_PAGE_SIZE == 100


@pytest.mark.parametrize("limit", [-1, MAX_PAGE_SIZE + 1, 10_000])
def test_page_size_outside_the_range_is_a_validation_failure(limit: int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        page_size(limit)
    assert raised.value.code == "VALIDATION_FAILED"
    assert "between 1 and 100" in raised.value.detail


def test_a_timed_position_round_trips_with_its_offset() -> None:
    at = datetime(2026, 12, 6, 10, 51, 21, 123456, tzinfo=timezone(timedelta(hours=2)))
    position = Position(kind="audit", id="row-7", at=at)
    cursor = encode_cursor(position)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    decoded = decode_cursor(cursor, kind="audit", timed=True)
    assert decoded == position
    assert decoded is not None and decoded.time() == at


def test_an_id_position_round_trips_and_gives_its_uuid() -> None:
    key = uuid.uuid4()
    decoded = decode_cursor(encode_cursor(Position(kind="contacts", id=str(key))), kind="contacts", uuid_id=True)
    assert decoded == Position(kind="contacts", id=str(key))
    assert decoded.uuid() == key


def test_an_empty_cursor_is_the_first_page() -> None:
    assert decode_cursor("", kind="users", timed=True) is None


NOW = datetime(2026, 12, 6, tzinfo=UTC).isoformat()


@pytest.mark.parametrize(("cursor", "timed", "uuid_id"), [
    ("not base64 at all!", False, False),
    (base64.urlsafe_b64encode(b"\xff\xfe").decode(), False, False),
    (raw_cursor(["users", "x"]), False, False),
    (raw_cursor("text"), False, False),
    (raw_cursor({"k": "other", "i": "x"}), False, False),
    (raw_cursor({"i": "x"}), False, False),
    (raw_cursor({"k": "users", "i": ""}), False, False),
    (raw_cursor({"k": "users", "i": 7}), False, False),
    (raw_cursor({"k": "users", "i": "x"}), True, False),
    (raw_cursor({"k": "users", "i": "x", "t": NOW}), False, False),
    (raw_cursor({"k": "users", "i": "x", "t": "2026-12-06T10:00:00"}), True, False),
    (raw_cursor({"k": "users", "i": "x", "t": "yesterday"}), True, False),
    (raw_cursor({"k": "users", "i": "not-a-uuid"}), False, True),
    ("A" * (MAX_CURSOR_LENGTH + 1), False, False),
])
def test_anything_not_handed_out_for_this_list_is_an_invalid_cursor(cursor: str, timed: bool, uuid_id: bool) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_cursor(cursor, kind="users", timed=timed, uuid_id=uuid_id)
    assert raised.value.code == "INVALID_CURSOR"
