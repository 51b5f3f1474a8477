"""Tenant and usage bodies for outbound messaging: the tenant's read-receipt policy, the number's coexistence,
throughput and health, delivered counts in the usage, and how the OpenAPI document describes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eva.tenant.v1 import tenant_pb2
from gateway.app import GatewayApp
from gateway.schemas.tenant import OwnTenantOut, TenantUpdateIn, WhatsAppCredentialsIn, WhatsAppCredentialsOut
from gateway.schemas.usage import UsageOut
from pydantic import ValidationError

SECRETS = {"accessToken": "EAAG", "appSecret": "s", "verifyToken": "v"}


def test_the_own_tenant_shows_its_read_receipt_policy() -> None:
    tenant = tenant_pb2.Tenant(id="t1", name="Hotel", slug="hotel", status="active", read_receipts="never")
    assert OwnTenantOut.from_proto(tenant).model_dump(by_alias=True)["readReceipts"] == "never"
    unset = OwnTenantOut.from_proto(tenant_pb2.Tenant(id="t1", name="Hotel", slug="hotel", status="active"))
    assert unset.read_receipts == "on_read"  # an upstream that predates the field: the default policy


@pytest.mark.parametrize("value", ["on_read", "never"])
def test_read_receipts_are_forwarded_only_when_given(value: str) -> None:
    request = TenantUpdateIn.model_validate({"readReceipts": value}).to_proto()
    assert request.HasField("read_receipts") and request.read_receipts == value
    assert not request.HasField("name")
    assert not TenantUpdateIn.model_validate({"name": "Hotel Sol"}).to_proto().HasField("read_receipts")


@pytest.mark.parametrize("value", ["sometimes", "NEVER", "", None])
def test_unknown_read_receipt_policies_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError):
        TenantUpdateIn.model_validate({"readReceipts": value})


def test_coexistence_and_throughput_are_optional_and_bounded() -> None:
    base = {"phoneNumberId": "106540352242922", "wabaId": "102290129340398", **SECRETS}
    omitted = WhatsAppCredentialsIn.model_validate(base).to_proto()
    assert not omitted.HasField("coexistence") and not omitted.HasField("throughput_mps")  # unchanged upstream
    given = WhatsAppCredentialsIn.model_validate({**base, "coexistence": False, "throughputMps": 0}).to_proto()
    assert (given.HasField("coexistence"), given.coexistence, given.HasField("throughput_mps"),
            given.throughput_mps) == (True, False, True, 0)
    assert WhatsAppCredentialsIn.model_validate({**base, "throughputMps": 1000}).to_proto().throughput_mps == 1000
    for wrong in (-1, 1001, "fast", 2.5):
        with pytest.raises(ValidationError):
            WhatsAppCredentialsIn.model_validate({**base, "throughputMps": wrong})


def test_the_whatsapp_view_shows_coexistence_throughput_and_health() -> None:
    view = tenant_pb2.WhatsAppCredentialsView(
        configured=True, phone_number_id="106540352242922", coexistence=True, throughput_mps=20,
        health=tenant_pb2.WhatsAppHealth(status="unhealthy", code=190, detail="access token expired",
                                         since="2026-12-06T10:00:00.000Z"))
    body = WhatsAppCredentialsOut.from_proto(view).model_dump(by_alias=True)
    assert (body["coexistence"], body["throughputMps"]) == (True, 20)
    assert body["health"] == {"status": "unhealthy", "code": 190, "detail": "access token expired",
                              "since": "2026-12-06T10:00:00.000Z"}
    healthy = WhatsAppCredentialsOut.from_proto(tenant_pb2.WhatsAppCredentialsView(
        configured=True, health=tenant_pb2.WhatsAppHealth(status="healthy", since="2026-12-06T11:00:00.000Z")))
    assert healthy.model_dump(by_alias=True)["health"] == {"status": "healthy", "code": None, "detail": None,
                                                           "since": "2026-12-06T11:00:00.000Z"}
    unconfigured = WhatsAppCredentialsOut.from_proto(tenant_pb2.WhatsAppCredentialsView(configured=False))
    assert (unconfigured.health, unconfigured.coexistence, unconfigured.throughput_mps) == (None, False, 0)


def test_usage_shows_delivered_days_next_to_the_totals() -> None:
    usage = tenant_pb2.GetUsageResponse(
        days=[tenant_pb2.UsageDay(date="2026-12-06", category="marketing", direction="outbound", count=3),
              tenant_pb2.UsageDay(date="2026-12-06", category="marketing", direction="delivered", count=2)],
        totals_by_category={"marketing": 3}, limits=tenant_pb2.PlanLimits(plan="starter"))
    body = UsageOut.from_proto(usage).model_dump(by_alias=True)
    assert body["days"][1] == {"date": "2026-12-06", "category": "marketing", "direction": "delivered", "count": 2}
    assert body["totalsByCategory"] == {"marketing": 3}


def test_the_openapi_document_describes_the_new_fields(build_gateway: Callable[..., GatewayApp]) -> None:
    schemas = build_gateway().api.openapi()["components"]["schemas"]
    update = schemas["TenantUpdateIn"]["properties"]["readReceipts"]
    assert {"enum": ["on_read", "never"], "type": "string"} in update["anyOf"]
    assert "readReceipts" in schemas["OwnTenantOut"]["required"]
    put = schemas["WhatsAppCredentialsIn"]["properties"]
    assert {"maximum": 1000, "minimum": 0, "type": "integer"} in put["throughputMps"]["anyOf"]
    assert "coexistence" in put
    shown = schemas["WhatsAppCredentialsOut"]
    assert {"coexistence", "throughputMps", "health"} <= set(shown["required"])
    assert set(schemas["WhatsAppHealthOut"]["properties"]) == {"status", "code", "detail", "since"}
    assert "delivered" in schemas["UsageDayOut"]["properties"]["direction"]["description"]
