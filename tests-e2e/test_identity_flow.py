"""Flow 1: a hotel registers, logs in, reads itself, and stores its WhatsApp credentials (secrets never returned)."""

from __future__ import annotations

import httpx
import pytest
from e2e_support import StackUrls, register_hotel

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_register_login_me_and_whatsapp_credentials(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    assert hotel.user["role"] == "admin"
    assert hotel.tenant["slug"]

    response = await http.post(f"{stack.gateway}/auth/login", json={"email": hotel.email, "password": hotel.password})
    assert response.status_code == 200, response.text
    login = response.json()
    assert login["user"]["id"] == hotel.user["id"] and login["tenant"]["id"] == hotel.tenant["id"]

    response = await http.get(f"{stack.gateway}/auth/me", headers={"Authorization": f"Bearer {login['accessToken']}"})
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["user"]["email"] == hotel.email and me["tenant"]["id"] == hotel.tenant["id"]

    secret_body = {"phoneNumberId": hotel.phone_number_id, "wabaId": "102290129340398",
                   "accessToken": hotel.access_token_wa, "appSecret": hotel.app_secret,
                   "verifyToken": hotel.verify_token}
    response = await http.put(f"{stack.gateway}/api/tenant/whatsapp", headers=hotel.auth, json=secret_body)
    assert response.status_code == 200, response.text
    for raw in (response.text, (await http.get(f"{stack.gateway}/api/tenant/whatsapp", headers=hotel.auth)).text):
        assert hotel.access_token_wa not in raw and hotel.app_secret not in raw and hotel.verify_token not in raw
    view = (await http.get(f"{stack.gateway}/api/tenant/whatsapp", headers=hotel.auth)).json()
    assert view["phoneNumberId"] == hotel.phone_number_id
    assert view["accessToken"] == {"set": True, "last4": hotel.access_token_wa[-4:]}
    assert view["appSecret"]["last4"] == hotel.app_secret[-4:]


async def test_wrong_password_and_unknown_email_are_one_error(stack: StackUrls, http: httpx.AsyncClient) -> None:
    hotel = await register_hotel(http, stack, configure_whatsapp=False)
    wrong = await http.post(f"{stack.gateway}/auth/login", json={"email": hotel.email, "password": "x" * 12})
    unknown = await http.post(f"{stack.gateway}/auth/login",
                              json={"email": "nobody@nowhere.test", "password": "x" * 12})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert wrong.json()["code"] == unknown.json()["code"] == "INVALID_CREDENTIALS"


async def test_credentials_need_a_token(stack: StackUrls, http: httpx.AsyncClient) -> None:
    response = await http.put(f"{stack.gateway}/api/tenant/whatsapp", json={"phoneNumberId": "1"})
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    response = await http.get(f"{stack.gateway}/auth/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401


async def test_gateway_health_reports_every_dependency(stack: StackUrls, http: httpx.AsyncClient) -> None:
    for url in (stack.gateway, stack.gateway_replica):
        response = await http.get(f"{url}/health")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert {"auth", "tenant", "conversation", "messaging"} <= set(body["dependencies"])
