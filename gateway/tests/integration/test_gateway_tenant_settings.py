"""/api/tenant and /api/tenant/whatsapp for outbound messaging, through the real gateway and a gRPC upstream: the
read-receipt policy is shown and changed, coexistence and throughput are forwarded only when given, and the
WhatsApp view carries them with the number's health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

SECRETS = {"accessToken": "EAAGm0PX4ZCpsBAvery-secret-token-7f3a", "appSecret": "app-secret-0123456789abcdef",
           "verifyToken": "verify-token-xyz9"}
NUMBER = {"phoneNumberId": "106540352242922", "wabaId": "102290129340398", "displayPhoneNumber": "15550783881"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


async def test_the_tenant_shows_and_changes_its_read_receipts(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    shown = await http.get("/api/tenant", headers=bearer(attendant.token))
    assert shown.status_code == 200 and shown.json()["readReceipts"] == "on_read"
    upstreams.directory.tenants[admin.tenant_id].read_receipts = "never"
    assert (await http.get("/api/tenant", headers=bearer(attendant.token))).json()["readReceipts"] == "never"

    changed = await http.patch("/api/tenant", headers=bearer(admin.token), json={"readReceipts": "on_read"})
    assert changed.status_code == 200 and "readReceipts" in changed.json()
    for wrong in ("sometimes", "NEVER", None, 1):
        assert problem(await http.patch("/api/tenant", headers=bearer(admin.token),
                                        json={"readReceipts": wrong})) == (400, "VALIDATION_FAILED"), wrong
    assert problem(await http.patch("/api/tenant", headers=bearer(attendant.token),
                                    json={"readReceipts": "never"})) == (403, "FORBIDDEN_ROLE")


async def test_coexistence_and_throughput_reach_the_tenant_service_only_when_given(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    stored = await http.put("/api/tenant/whatsapp", headers=bearer(admin.token),
                            json={**NUMBER, **SECRETS, "coexistence": True, "throughputMps": 20})
    assert stored.status_code == 200, stored.text
    forwarded = upstreams.directory.credentials[admin.tenant_id]
    assert (forwarded.HasField("coexistence"), forwarded.coexistence, forwarded.throughput_mps) == (True, True, 20)
    body = stored.json()
    assert {"coexistence", "throughputMps", "health"} <= set(body)
    for secret in SECRETS.values():
        assert secret not in stored.text

    omitted = await http.put("/api/tenant/whatsapp", headers=bearer(admin.token), json={**NUMBER, **SECRETS})
    assert omitted.status_code == 200
    forwarded = upstreams.directory.credentials[admin.tenant_id]
    assert not forwarded.HasField("coexistence") and not forwarded.HasField("throughput_mps")  # kept upstream

    for wrong in ({"throughputMps": 1001}, {"throughputMps": -1}, {"coexistence": "sometimes"}):
        assert problem(await http.put("/api/tenant/whatsapp", headers=bearer(admin.token),
                                      json={**NUMBER, **SECRETS, **wrong})) == (400, "VALIDATION_FAILED"), wrong


async def test_an_unconfigured_number_has_no_health(
    http: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    admin = make_account(role="admin")
    view = await http.get("/api/tenant/whatsapp", headers=bearer(admin.token))
    assert view.status_code == 200
    assert (view.json()["configured"], view.json()["health"], view.json()["coexistence"],
            view.json()["throughputMps"]) == (False, None, False, 0)
