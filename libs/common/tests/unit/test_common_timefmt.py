from datetime import UTC, datetime, timedelta, timezone

import pytest
from eva_common.errors import InvalidArgument
from eva_common.timefmt import parse_rfc3339, rfc3339


def test_utc_with_milliseconds_and_z() -> None:
    assert rfc3339(datetime(2026, 12, 6, 10, 51, 21, 123456, tzinfo=UTC)) == "2026-12-06T10:51:21.123Z"
    assert rfc3339(datetime(2026, 12, 6, 10, 51, 21, tzinfo=UTC)) == "2026-12-06T10:51:21.000Z"
    assert rfc3339(datetime(2026, 12, 6, 10, 51, 21, 999999, tzinfo=UTC)) == "2026-12-06T10:51:21.999Z"  # truncated


def test_other_offsets_and_naive_times_are_shown_in_utc() -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 7, 1, 0, 30, tzinfo=lisbon_summer)) == "2026-06-30T23:30:00.000Z"
    assert rfc3339(datetime(2026, 7, 1, 0, 30)) == "2026-07-01T00:30:00.000Z"


def test_round_trips_to_the_millisecond_and_sorts_as_text() -> None:
    moments = [datetime(2026, 12, 6, 10, 51, 21, micro, tzinfo=UTC) for micro in (0, 5_000, 120_000, 999_000)]
    texts = [rfc3339(moment) for moment in moments]
    assert [datetime.fromisoformat(text) for text in texts] == moments
    assert sorted(texts) == texts and len({len(text) for text in texts}) == 1


def test_an_absent_time_is_the_empty_string() -> None:
    assert rfc3339(None) == ""


def test_request_timestamps_are_read_in_utc() -> None:
    ten = datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_rfc3339("2026-11-29T10:00:00Z", field="f") == ten
    assert parse_rfc3339(" 2026-11-29T12:00:00+02:00 ", field="f") == ten
    assert parse_rfc3339("2026-11-29t10:00:00z", field="f") == ten
    assert parse_rfc3339(rfc3339(ten), field="f") == ten  # what the services show, they read back
    assert parse_rfc3339("", field="f") is None and parse_rfc3339("  ", field="f") is None
    assert parse_rfc3339("2026-11-29T10:00:00", field="f", naive_utc=True) == ten


@pytest.mark.parametrize(("text", "naive_utc"), [("yesterday", False), ("yesterday", True),
                                                 ("2026-11-29T10:00:00", False)])
def test_anything_else_is_refused_with_the_callers_code(text: str, naive_utc: bool) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_rfc3339(text, field="from_time", code="INVALID_TIME", naive_utc=naive_utc)
    assert raised.value.code == "INVALID_TIME" and "from_time" in raised.value.detail
