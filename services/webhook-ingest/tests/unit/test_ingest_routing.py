from __future__ import annotations

import json
from typing import Any

import pytest
from eva_common.errors import InvalidArgument
from webhook_ingest_service.routing import parse_delivery, plan_routes
from webhook_ingest_service.tenants import TenantRoute

HOTEL_A = TenantRoute(tenant_id="tenant-a", tenant_status="active", app_secret="secret-a")
HOTEL_B = TenantRoute(tenant_id="tenant-b", tenant_status="active", app_secret="")


def change(phone_number_id: str | None, wamid: str, field: str = "messages") -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp", "messages": [{"id": wamid, "type": "text"}]}
    if phone_number_id is not None:
        value["metadata"] = {"display_phone_number": "1555", "phone_number_id": phone_number_id}
    return {"value": value, "field": field}


def delivery(*entries: tuple[str, list[dict[str, Any]]]) -> bytes:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "time": 1749416383, "changes": changes} for waba, changes in entries],
    }
    return json.dumps(payload).encode()


def wamids(payload: dict[str, Any]) -> list[str]:
    return [m["id"] for e in payload["entry"] for c in e["changes"] for m in c["value"].get("messages", [])]


def test_reference_vector_routes_to_its_phone_number(vector_body: bytes, vector_phone_number_id: str) -> None:
    parsed = parse_delivery(vector_body)
    assert parsed.phone_number_ids == [vector_phone_number_id]
    plan = plan_routes(parsed, {vector_phone_number_id: HOTEL_A})
    assert [part.tenant_id for part in plan.tenants] == ["tenant-a"]
    assert plan.tenants[0].phone_number_id == vector_phone_number_id
    assert plan.tenants[0].app_secret == "secret-a"
    assert plan.tenants[0].payload == json.loads(vector_body)
    assert plan.unrouted == []


def test_two_tenants_in_separate_entries_get_only_their_entries() -> None:
    parsed = parse_delivery(delivery(("waba-a", [change("pn-a", "wamid.A1")]),
                                     ("waba-b", [change("pn-b", "wamid.B1"), change("pn-b", "wamid.B2")])))
    plan = plan_routes(parsed, {"pn-a": HOTEL_A, "pn-b": HOTEL_B})
    parts = {part.tenant_id: part for part in plan.tenants}
    assert set(parts) == {"tenant-a", "tenant-b"}
    assert wamids(parts["tenant-a"].payload) == ["wamid.A1"]
    assert wamids(parts["tenant-b"].payload) == ["wamid.B1", "wamid.B2"]
    assert parts["tenant-b"].phone_number_id == "pn-b"
    assert [entry["id"] for entry in parts["tenant-a"].payload["entry"]] == ["waba-a"]
    # entry fields other than changes are kept, and so is the top level
    assert parts["tenant-b"].payload["entry"][0]["time"] == 1749416383
    assert parts["tenant-b"].payload["object"] == "whatsapp_business_account"


def test_changes_of_one_entry_are_split_by_phone_number_owner() -> None:
    parsed = parse_delivery(delivery(("waba-x", [change("pn-a", "wamid.A1"), change("pn-b", "wamid.B1"),
                                                  change("pn-a", "wamid.A2")])))
    plan = plan_routes(parsed, {"pn-a": HOTEL_A, "pn-b": HOTEL_B})
    parts = {part.tenant_id: part for part in plan.tenants}
    assert wamids(parts["tenant-a"].payload) == ["wamid.A1", "wamid.A2"]
    assert wamids(parts["tenant-b"].payload) == ["wamid.B1"]


def test_one_tenant_with_two_numbers_is_one_part_keyed_by_its_first_number() -> None:
    second = TenantRoute(tenant_id="tenant-a", tenant_status="active", app_secret="secret-a")
    parsed = parse_delivery(delivery(("waba-a", [change("pn-a", "wamid.A1"), change("pn-a2", "wamid.A2")])))
    plan = plan_routes(parsed, {"pn-a": HOTEL_A, "pn-a2": second})
    assert len(plan.tenants) == 1
    assert plan.tenants[0].phone_number_id == "pn-a"
    assert wamids(plan.tenants[0].payload) == ["wamid.A1", "wamid.A2"]


def test_a_number_nobody_owns_is_unrouted_and_kept_apart() -> None:
    parsed = parse_delivery(delivery(("waba-a", [change("pn-a", "wamid.A1")]),
                                     ("waba-z", [change("pn-z", "wamid.Z1")])))
    plan = plan_routes(parsed, {"pn-a": HOTEL_A, "pn-z": None})
    assert [part.tenant_id for part in plan.tenants] == ["tenant-a"]
    assert wamids(plan.tenants[0].payload) == ["wamid.A1"]
    assert [part.routing_key for part in plan.unrouted] == ["pn-z"]
    assert wamids(plan.unrouted[0].payload) == ["wamid.Z1"]


def test_account_level_change_follows_the_owner_of_its_wabas_numbers() -> None:
    parsed = parse_delivery(delivery(("waba-a", [change("pn-a", "wamid.A1"),
                                                  change(None, "wamid.T1", field="message_template_status_update")])))
    plan = plan_routes(parsed, {"pn-a": HOTEL_A})
    assert [part.tenant_id for part in plan.tenants] == ["tenant-a"]
    assert wamids(plan.tenants[0].payload) == ["wamid.A1", "wamid.T1"]
    assert plan.unrouted == []


def test_account_level_change_alone_is_unrouted_by_waba_id() -> None:
    parsed = parse_delivery(delivery(("waba-q", [change(None, "wamid.T1", field="account_update")])))
    assert parsed.phone_number_ids == []
    plan = plan_routes(parsed, {})
    assert plan.tenants == []
    assert [part.routing_key for part in plan.unrouted] == ["waba-q"]


def test_numeric_ids_are_read_as_strings() -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": 42, "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": 106540352242922}}}]}]}).encode()
    assert parse_delivery(body).phone_number_ids == ["106540352242922"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b'{"entry": [}',
        b"[]",
        b'"entry"',
        b'{"object": "whatsapp_business_account"}',
        b'{"entry": {}}',
        b'{"entry": [1]}',
        b'{"entry": [{"id": "1", "changes": {}}]}',
        b'{"entry": [{"id": "1", "changes": ["x"]}]}',
        b'{"entry": [], "n": NaN}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_delivery(body)
    assert raised.value.code == "MALFORMED_PAYLOAD"


def test_account_level_change_alone_goes_to_the_tenant_service_owner_of_its_waba() -> None:
    parsed = parse_delivery(delivery(("waba-q", [change(None, "wamid.T1", field="message_template_status_update")])))
    assert parsed.account_waba_ids == ["waba-q"]
    plan = plan_routes(parsed, {}, {"waba-q": HOTEL_A})
    assert [part.tenant_id for part in plan.tenants] == ["tenant-a"]
    assert plan.tenants[0].phone_number_id == "waba-q"  # a WABA-only share is keyed by its WABA id
    assert plan.tenants[0].app_secret == "secret-a"
    assert wamids(plan.tenants[0].payload) == ["wamid.T1"]
    assert plan.unrouted == []


def test_account_level_change_of_an_unknown_waba_stays_unrouted() -> None:
    parsed = parse_delivery(delivery(("waba-q", [change(None, "wamid.T1", field="account_update")])))
    plan = plan_routes(parsed, {}, {"waba-q": None})
    assert plan.tenants == [] and [part.routing_key for part in plan.unrouted] == ["waba-q"]


def test_waba_owner_joins_the_share_of_its_numbers_keyed_by_the_number() -> None:
    parsed = parse_delivery(delivery(("waba-a", [change(None, "wamid.T1", field="message_template_status_update"),
                                                  change("pn-a", "wamid.A1")])))
    assert parsed.account_waba_ids == ["waba-a"]
    plan = plan_routes(parsed, {"pn-a": HOTEL_A}, {"waba-a": HOTEL_A})
    assert len(plan.tenants) == 1 and plan.tenants[0].phone_number_id == "pn-a"
    assert wamids(plan.tenants[0].payload) == ["wamid.T1", "wamid.A1"]


def test_numbered_changes_do_not_ask_for_their_waba() -> None:
    parsed = parse_delivery(delivery(("waba-a", [change("pn-a", "wamid.A1")])))
    assert parsed.account_waba_ids == []
