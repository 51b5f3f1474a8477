"""Outbound settings and delivered counting, as rules (no I/O): read-receipt policies, throughput bounds, Meta's
health detail, and which status events count a message as delivered."""

from datetime import UTC, datetime

import pytest
from eva_common.errors import InvalidArgument
from eva_events.envelope import make_event
from tenant_service.domain import CredentialsInput, clean_credentials, clean_health_detail, clean_read_receipts
from tenant_service.usage.domain import delivered_message

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 6, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(("given", "expected"), [("on_read", "on_read"), (" NEVER ", "never")])
def test_read_receipt_policies(given: str, expected: str) -> None:
    assert clean_read_receipts(given) == expected


@pytest.mark.parametrize("given", ["", "always", "on read"])
def test_unknown_read_receipt_policies_are_refused(given: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_read_receipts(given)
    assert refused.value.code == "INVALID_READ_RECEIPTS"


def _credentials(**fields: object) -> CredentialsInput:
    return CredentialsInput(phone_number_id="1065", waba_id="1022", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("throughput", [None, 0, 1, 80, 1000])
def test_throughput_within_bounds_is_kept(throughput: int | None) -> None:
    clean = clean_credentials(_credentials(throughput_mps=throughput, coexistence=True), first_set=False)
    assert (clean.throughput_mps, clean.coexistence) == (throughput, True)


@pytest.mark.parametrize("throughput", [-1, 1001])
def test_throughput_outside_bounds_is_refused(throughput: int) -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_credentials(_credentials(throughput_mps=throughput), first_set=False)
    assert refused.value.code == "INVALID_THROUGHPUT"


def test_health_detail_is_one_bounded_line() -> None:
    assert clean_health_detail("  Error validating\n access token ") == "Error validating access token"
    assert clean_health_detail("   ") is None
    assert len(clean_health_detail("x" * 2000) or "") == 500


def _status(status: str, *, direction: str = "outbound", **data: object):
    view = {"id": "m1", "direction": direction, "status": status, "updatedAt": LATER.isoformat(),
            "statusHistory": [{"status": "SENT", "at": AT.isoformat()}, {"status": status, "at": AT.isoformat()}],
            **data}
    return make_event("message.status_changed", tenant_id="t1", data=view)


@pytest.mark.parametrize(("data", "category"), [
    ({"category": "marketing", "pricingCategory": "utility"}, "marketing"),
    ({"category": None, "pricingCategory": "UTILITY"}, "utility"),
    ({"pricingCategory": "marketing_lite"}, "marketing"),
    ({"pricingCategory": "referral_conversion"}, "service"),
    ({}, "service"),
])
def test_delivered_and_read_count_in_the_messages_category(data: dict[str, object], category: str) -> None:
    for status in ("DELIVERED", "READ"):
        delivered = delivered_message(_status(status, **data))
        assert delivered is not None and (delivered.message_id, delivered.category, delivered.at) == (
            "m1", category, AT)  # the status's own time, not the message's last update


@pytest.mark.parametrize(("status", "direction"), [("SENT", "outbound"), ("FAILED", "outbound"),
                                                   ("PENDING", "outbound"), ("READ", "inbound")])
def test_other_statuses_and_inbound_messages_are_not_delivered(status: str, direction: str) -> None:
    assert delivered_message(_status(status, direction=direction)) is None


def test_other_event_types_are_not_delivered() -> None:
    event = make_event("message.created", tenant_id="t1", data={"id": "m1", "direction": "outbound",
                                                                "status": "DELIVERED"})
    assert delivered_message(event) is None
