"""Audit: filters, cursors and what an entry records about its caller (no I/O)."""

from datetime import UTC, datetime

import pytest
from eva_common.audit import RequestMeta, actor_of
from eva_common.auth import Principal
from eva_common.errors import InvalidArgument
from tenant_service.audit_log.domain import bounded_details, clean_audit_filter


def _principal(kind: str, subject: str) -> Principal:
    return Principal(subject=subject, kind=kind, role="admin", tenant_id="t1", token="-", token_id="-",  # type: ignore[arg-type]
                     issued_at=0, expires_at=0)


def test_actors() -> None:
    assert actor_of(_principal("user", "u-1")) == ("user", "u-1")
    assert actor_of(_principal("api_key", "apikey:k-9")) == ("api_key", "k-9")
    assert actor_of(_principal("service", "service:auth")) == ("service", "service:auth")


def test_request_meta_is_trimmed_and_bounded() -> None:
    meta = RequestMeta.of(ip=" 203.0.113.9 ", user_agent="A" * 2000, request_id="")
    assert (meta.ip, len(meta.user_agent or ""), meta.request_id) == ("203.0.113.9", 512, None)


def test_filters() -> None:
    clean = clean_audit_filter(actor_id=" u-1 ", action="", target_type="user", target_id="",
                               from_time="2025-03-01T00:00:00Z", to_time="2025-03-02T00:00:00+01:00")
    assert (clean.actor_id, clean.action, clean.target_type, clean.target_id) == ("u-1", None, "user", None)
    assert clean.from_time == datetime(2025, 3, 1, tzinfo=UTC)
    assert clean.to_time == datetime(2025, 3, 1, 23, tzinfo=UTC)


@pytest.mark.parametrize(("fields", "code"), [
    ({"from_time": "2025-03-02T00:00:00Z", "to_time": "2025-03-01T00:00:00Z"}, "INVALID_TIME_RANGE"),
    ({"from_time": "2025-03-01T00:00:00Z", "to_time": "2025-03-01T00:00:00Z"}, "INVALID_TIME_RANGE"),
    ({"from_time": "yesterday"}, "INVALID_TIME"),
    ({"action": "a" * 201}, "INVALID_FILTER"),
])
def test_invalid_filters(fields: dict[str, str], code: str) -> None:
    values = {"actor_id": "", "action": "", "target_type": "", "target_id": "", "from_time": "", "to_time": "",
              **fields}
    with pytest.raises(InvalidArgument) as raised:
        clean_audit_filter(**values)
    assert raised.value.code == code


def test_oversized_details_are_not_kept() -> None:
    assert bounded_details({"a": 1}) == {"a": 1}
    huge = bounded_details({"blob": "x" * 20_000})
    assert huge["truncated"] is True and huge["originalSize"] > 20_000
