"""/api/templates and /api/templates/sync: the camelCase bodies (the template.updated event's TemplateView field for
field), the filters and paging forwarded to MessagingService, API keys with messages:read on the list only, admins
only on the sync."""

from __future__ import annotations

import json
from typing import Any

import httpx
from eva.auth.v1 import auth_pb2
from eva.messaging.v1 import messaging_pb2
from eva_common.errors import FailedPrecondition
from eva_events.messaging import TemplateView
from eva_testing.tokens import TestTokenIssuer
from gateway.schemas.templates import TemplateOut

COMPONENTS = [{"type": "BODY", "text": "Hello {{1}}"}]


def bearer(issuer: TestTokenIssuer, role: str = "attendant") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.user_token(user_id='u1', tenant_id='t1', role=role)}"}


def _template(name: str) -> messaging_pb2.Template:
    return messaging_pb2.Template(
        id=f"id-{name}", name=name, language="en_US", status="APPROVED", category="UTILITY", quality="GREEN",
        parameter_format="POSITIONAL", components_json=json.dumps(COMPONENTS), updated_at="2026-12-06T10:51:21.123Z",
        meta_id="594")


def test_the_rest_template_has_the_event_views_fields() -> None:
    assert {f.alias or n for n, f in TemplateOut.model_fields.items()} == {
        f.alias or n for n, f in TemplateView.model_fields.items()}


async def test_the_list_forwards_filters_and_paging_and_answers_camel_case(
        http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer) -> None:
    fake_clients.messaging.responses["ListTemplates"] = messaging_pb2.ListTemplatesResponse(
        items=[_template("welcome")], next_cursor="c2", synced_at="2026-12-06T10:00:00.000Z")
    response = await http.get("/api/templates?status=APPROVED&category=UTILITY&language=en_US&quality=GREEN"
                              "&name=wel&limit=10&cursor=c1", headers=bearer(issuer))
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [{
        "id": "id-welcome", "name": "welcome", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
        "quality": "GREEN", "parameterFormat": "POSITIONAL", "components": COMPONENTS, "rejectedReason": None,
        "updatedAt": "2026-12-06T10:51:21.123Z"}], "nextCursor": "c2", "syncedAt": "2026-12-06T10:00:00.000Z"}
    (_, request), = fake_clients.messaging.requests
    assert (request.status, request.category, request.language, request.quality, request.name, request.limit,
            request.cursor, request.tenant_id) == ("APPROVED", "UTILITY", "en_US", "GREEN", "wel", 10, "c1", "")

    fake_clients.messaging.responses["ListTemplates"] = messaging_pb2.ListTemplatesResponse()
    empty = await http.get("/api/templates", headers=bearer(issuer))
    assert empty.json() == {"items": [], "nextCursor": None, "syncedAt": None}
    assert fake_clients.messaging.requests[-1][1].limit == 50
    assert (await http.get("/api/templates?limit=0", headers=bearer(issuer))).status_code == 400


async def test_api_keys_with_messages_read_may_list_but_never_sync(
        http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer) -> None:
    def exchange(request: auth_pb2.ExchangeApiKeyRequest) -> auth_pb2.ExchangeApiKeyResponse:
        token = issuer.api_key_token(key_id="k1", tenant_id="t1", scopes=["messages:read"])
        return auth_pb2.ExchangeApiKeyResponse(access_token=token, expires_in=300, tenant_id="t1",
                                               scopes=["messages:read"], key_id="k1")

    fake_clients.auth.responses["ExchangeApiKey"] = exchange
    fake_clients.messaging.responses["ListTemplates"] = messaging_pb2.ListTemplatesResponse()
    key = {"X-Api-Key": "eva_abcdefgh_" + "s" * 40}
    assert (await http.get("/api/templates", headers=key)).status_code == 200
    refused = await http.post("/api/templates/sync", headers=key)
    assert refused.status_code == 403 and refused.json()["code"] == "API_KEY_NOT_ALLOWED"
    assert [name for name, _ in fake_clients.messaging.requests] == ["ListTemplates"]


async def test_the_sync_is_for_admins_and_answers_its_counts(
        http: httpx.AsyncClient, fake_clients: Any, issuer: TestTokenIssuer) -> None:
    refused = await http.post("/api/templates/sync", headers=bearer(issuer))
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN_ROLE"
    assert fake_clients.messaging.requests == []
    fake_clients.messaging.responses["SyncTemplates"] = messaging_pb2.SyncTemplatesResponse(
        fetched=5, created=3, updated=1, removed=1, synced_at="2026-12-06T10:51:21.123Z")
    response = await http.post("/api/templates/sync", headers=bearer(issuer, "admin"))
    assert response.status_code == 200
    assert response.json() == {"fetched": 5, "created": 3, "updated": 1, "removed": 1,
                               "syncedAt": "2026-12-06T10:51:21.123Z"}
    fake_clients.messaging.responses["SyncTemplates"] = FailedPrecondition(
        "Meta refused the tenant's access token (190)", code="WHATSAPP_TOKEN_INVALID")
    failed = await http.post("/api/templates/sync", headers=bearer(issuer, "admin"))
    assert failed.status_code == 422 and failed.json()["code"] == "WHATSAPP_TOKEN_INVALID"
