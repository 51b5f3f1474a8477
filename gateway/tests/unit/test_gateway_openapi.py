"""The OpenAPI document, walked from app.openapi(): every endpoint is there with its response model, its
problem+json errors (429 with Retry-After), its credentials (bearer; API key only where accepted, with the scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway.app import GatewayApp

ENDPOINTS = {
    ("get", "/health"),
    ("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/refresh"), ("post", "/auth/logout"),
    ("get", "/auth/me"),
    ("get", "/api/users"), ("post", "/api/users"), ("get", "/api/users/{user_id}"),
    ("patch", "/api/users/{user_id}"), ("delete", "/api/users/{user_id}"),
    ("get", "/api/tenants"), ("post", "/api/tenants"), ("post", "/api/tenants/{tenant_id}/suspend"),
    ("post", "/api/tenants/{tenant_id}/reactivate"),
    ("get", "/api/tenant"), ("patch", "/api/tenant"), ("put", "/api/tenant/whatsapp"), ("get", "/api/tenant/whatsapp"),
    ("post", "/api/tenant/api-keys"), ("get", "/api/tenant/api-keys"), ("delete", "/api/tenant/api-keys/{api_key_id}"),
    ("get", "/api/usage"), ("get", "/api/audit-logs"), ("get", "/api/presence"),
    ("get", "/api/conversations/{conversation_id}"), ("get", "/api/conversations/{conversation_id}/messages"),
    ("get", "/api/messages"),
    ("get", "/api/conversations"), ("patch", "/api/conversations/{conversation_id}"),
    ("post", "/api/conversations/{conversation_id}/assign"),
    ("post", "/api/conversations/{conversation_id}/tags/{tag_id}"),
    ("delete", "/api/conversations/{conversation_id}/tags/{tag_id}"),
    ("get", "/api/tags"), ("post", "/api/tags"), ("patch", "/api/tags/{tag_id}"), ("delete", "/api/tags/{tag_id}"),
    ("get", "/api/escalations"), ("post", "/api/escalations"),
    ("post", "/api/escalations/{escalation_id}/acknowledge"), ("post", "/api/escalations/{escalation_id}/resolve"),
    ("get", "/api/contacts"), ("post", "/api/contacts"), ("get", "/api/contacts/{contact_id}"),
    ("patch", "/api/contacts/{contact_id}"),
    ("get", "/api/messages/{message_id}/media"),
    ("post", "/api/media"),
    ("post", "/api/messages"), ("post", "/api/messages/{message_id}/retry"),
    ("patch", "/api/messages/{message_id}/read"), ("post", "/api/conversations/{conversation_id}/read"),
    ("get", "/api/templates"), ("post", "/api/templates/sync"),
    ("post", "/api/webhooks"), ("get", "/api/webhooks"), ("get", "/api/webhooks/{subscription_id}"),
    ("patch", "/api/webhooks/{subscription_id}"), ("delete", "/api/webhooks/{subscription_id}"),
    ("post", "/api/webhooks/{subscription_id}/redeliver"), ("get", "/api/webhooks/deliveries"),
    ("get", "/api/webhooks/deliveries/{delivery_id}"), ("post", "/api/webhooks/deliveries/{delivery_id}/redeliver"),
}
CONVERSATIONS_READ, CONVERSATIONS_WRITE, MESSAGES_READ = "conversations:read", "conversations:write", "messages:read"
API_KEY_SCOPES = {
    ("get", "/api/messages"): MESSAGES_READ,
    ("get", "/api/conversations/{conversation_id}"): CONVERSATIONS_READ,
    ("get", "/api/conversations/{conversation_id}/messages"): MESSAGES_READ,
    ("get", "/api/usage"): "usage:read",
    ("get", "/api/conversations"): CONVERSATIONS_READ,
    ("patch", "/api/conversations/{conversation_id}"): CONVERSATIONS_WRITE,
    ("post", "/api/conversations/{conversation_id}/assign"): CONVERSATIONS_WRITE,
    ("post", "/api/conversations/{conversation_id}/tags/{tag_id}"): CONVERSATIONS_WRITE,
    ("delete", "/api/conversations/{conversation_id}/tags/{tag_id}"): CONVERSATIONS_WRITE,
    ("get", "/api/tags"): CONVERSATIONS_READ,
    ("post", "/api/tags"): CONVERSATIONS_WRITE,
    ("patch", "/api/tags/{tag_id}"): CONVERSATIONS_WRITE,
    ("delete", "/api/tags/{tag_id}"): CONVERSATIONS_WRITE,
    ("get", "/api/escalations"): CONVERSATIONS_READ,
    ("post", "/api/escalations"): CONVERSATIONS_WRITE,
    ("post", "/api/escalations/{escalation_id}/acknowledge"): CONVERSATIONS_WRITE,
    ("post", "/api/escalations/{escalation_id}/resolve"): CONVERSATIONS_WRITE,
    ("get", "/api/contacts"): CONVERSATIONS_READ,
    ("post", "/api/contacts"): CONVERSATIONS_WRITE,
    ("get", "/api/contacts/{contact_id}"): CONVERSATIONS_READ,
    ("patch", "/api/contacts/{contact_id}"): CONVERSATIONS_WRITE,
    ("get", "/api/messages/{message_id}/media"): MESSAGES_READ,
    ("post", "/api/media"): "messages:send",
    ("post", "/api/messages"): "messages:send",
    ("post", "/api/messages/{message_id}/retry"): "messages:send",
    ("patch", "/api/messages/{message_id}/read"): "messages:send",
    ("post", "/api/conversations/{conversation_id}/read"): "messages:send",
    ("get", "/api/templates"): MESSAGES_READ,
}
MEDIA = ("get", "/api/messages/{message_id}/media")
PUBLIC = {("get", "/health"), ("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/refresh"),
          ("post", "/auth/logout")}
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture
def document(build_gateway: Callable[..., GatewayApp]) -> dict[str, Any]:
    return build_gateway().api.openapi()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items()
            for method, operation in item.items()}


def test_every_endpoint_is_documented_with_its_bodies_and_errors(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert set(operations) == ENDPOINTS
    for key, operation in operations.items():
        assert operation["tags"] and operation["summary"], key
        responses = operation["responses"]
        assert "422" not in responses or "application/problem+json" in responses["422"]["content"], key
        success = [status for status in responses if status.startswith("2")]
        assert len(success) == 1, key
        if key == MEDIA:  # the bytes, not JSON
            assert set(responses["200"]["content"]) == {"application/octet-stream"}
            assert responses["200"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
        elif success != ["204"]:
            assert responses[success[0]]["content"]["application/json"]["schema"], key
        if key == ("get", "/health"):
            continue
        errors = [status for status in responses if status[0] in "45"]
        assert errors, key
        for status in errors:
            assert set(responses[status]["content"]) == {"application/problem+json"}, (key, status)
            assert responses[status]["content"]["application/problem+json"]["schema"]["$ref"] == PROBLEM_REF
            assert responses[status]["description"] != "Error", (key, status)
        assert "429" in responses, key  # /auth/* per IP, /api/* per user and tenant
        assert set(responses["429"]["headers"]) >= {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining"}
        assert set(responses[success[0]]["headers"]) == {"RateLimit-Limit", "RateLimit-Remaining"}, key
        if key[1].startswith("/api/"):
            assert {"401", "403", "503", "504"} <= set(responses), key
        if key[0] in ("post", "put", "patch") and "requestBody" in operation:
            assert {"400", "413"} <= set(responses), key
        if "{" in key[1] or operation.get("parameters"):
            assert "400" in responses, key
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}


def test_credentials_are_declared_per_endpoint(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["accessToken"] == {"type": "http", "scheme": "bearer", "description": schemes["accessToken"][
        "description"]}
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == (
        "apiKey", "header", "X-Api-Key")
    assert "Authorization: ApiKey" in schemes["apiKey"]["description"]
    for key, operation in _operations(document).items():
        if key in PUBLIC:
            assert "security" not in operation and "x-accepts-api-key" not in operation, key
        elif key in API_KEY_SCOPES:
            scope = API_KEY_SCOPES[key]
            assert operation["x-accepts-api-key"] is True and operation["x-api-key-scope"] == scope, key
            assert operation["security"] == [{"accessToken": []}, {"apiKey": [scope]}], key
        else:
            assert operation["x-accepts-api-key"] is False, key
            assert operation["security"] == [{"accessToken": []}], key
            assert "API_KEY_NOT_ALLOWED" in operation["responses"]["403"]["description"], key


def test_the_api_key_is_said_to_be_shown_once(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/tenant/api-keys"]["post"]
    assert "only time the key is shown" in create["description"]
    created = document["components"]["schemas"]["CreatedApiKeyOut"]
    assert set(created["required"]) == {"id", "name", "prefix", "scopes", "createdAt", "expiresAt", "key"}
    assert "shown only in this response" in created["properties"]["key"]["description"]
    assert "key" not in document["components"]["schemas"]["ApiKeyOut"]["properties"]


def test_bodies_are_documented_in_camel_case(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["AuthSessionOut"]["properties"]) == {"accessToken", "refreshToken", "expiresIn", "user",
                                                             "tenant"}
    assert set(schemas["RegisterIn"]["required"]) == {"tenantName", "name", "email", "password"}
    assert {"accessToken", "appSecret", "verifyToken"} <= set(schemas["WhatsAppCredentialsOut"]["properties"])
    assert schemas["MessageOut"]["properties"]["content"]["type"] == "object"
    assert {"media", "statusHistory", "pricingCategory", "context", "referral", "errors"} <= set(
        schemas["MessageOut"]["properties"])
    assert set(schemas["MediaOut"]["properties"]) == {"status", "mimeType", "size", "filename", "caption", "sha256",
                                                      "error"}
    assert set(schemas["StatusChangeOut"]["properties"]) == {"status", "at", "error"}
    for page in ("ConversationPage", "EscalationPage", "ContactPage", "TagList"):
        assert set(schemas[page]["properties"]) == {"items", "nextCursor"}, page
    assert set(schemas["ConversationUpdateIn"]["properties"]) == {"status", "priority"}
    assert schemas["ConversationUpdateIn"]["properties"]["status"]["anyOf"][0]["enum"] == ["open", "pending",
                                                                                          "resolved"]
    assert set(schemas["AssignIn"]["required"]) == {"attendantId"}
    assert set(schemas["EscalationCreateIn"]["required"]) == {"conversationId", "reason"}
    assert set(schemas["ContactCreateIn"]["required"]) == {"name", "phone"}
    inbox = {parameter["name"] for parameter in document["paths"]["/api/conversations"]["get"]["parameters"]}
    assert inbox == {"status", "attendantId", "unassigned", "tag", "q", "updatedSince", "limit", "cursor"}
    escalations = {parameter["name"] for parameter in document["paths"]["/api/escalations"]["get"]["parameters"]}
    assert escalations == {"status", "conversationId", "limit", "cursor"}
    assert set(schemas["UserPage"]["properties"]) == {"items", "nextCursor"}
    assert set(schemas["UserUpdateIn"]["properties"]) == {"name", "email", "role", "active", "password"}
    assert set(schemas["UsageOut"]["properties"]) == {"days", "totalsByCategory", "limits"}
    assert set(schemas["PlanLimitsOut"]["properties"]) >= {"plan", "monthlyMessageQuota", "seats",
                                                            "messagesUsedThisMonth"}
    assert set(schemas["AuditLogOut"]["properties"]) == {
        "id", "actorType", "actorId", "action", "targetType", "targetId", "outcome", "ip", "userAgent", "requestId",
        "details", "occurredAt"}
    audit = {parameter["name"] for parameter in document["paths"]["/api/audit-logs"]["get"]["parameters"]}
    assert audit == {"actorId", "action", "targetType", "targetId", "from", "to", "limit", "cursor"}
    users = {parameter["name"] for parameter in document["paths"]["/api/users"]["get"]["parameters"]}
    assert {"limit", "cursor", "role", "q", "includeInactive"} <= users


async def test_the_served_document_is_the_same(http: httpx.AsyncClient, document: dict[str, Any]) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert set(response.json()["paths"]) == set(document["paths"])
    assert response.json()["paths"]["/api/usage"]["get"]["x-accepts-api-key"] is True


def test_webhook_models_show_the_secret_only_at_creation_and_take_no_api_key(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    subscription = {"id", "url", "events", "state", "pausedReason", "consecutiveFailures", "createdAt", "updatedAt",
                    "createdBy"}
    assert set(schemas["WebhookOut"]["properties"]) == subscription
    assert set(schemas["CreatedWebhookOut"]["properties"]) == subscription | {"secret"}
    assert set(schemas["WebhookDeliveryOut"]["properties"]) == {
        "id", "subscriptionId", "eventId", "eventType", "state", "attempts", "lastError", "lastStatusCode",
        "latencyMs", "nextAttemptAt", "expiresAt", "createdAt", "deliveredAt", "envelope"}
    assert set(schemas["WebhookCreateIn"]["required"]) == {"url", "events"}
    assert schemas["WebhookCreateIn"]["properties"]["events"]["items"]["enum"][0] == "message.received"
    assert set(schemas["RedeliverRangeIn"]["properties"]) == {"from", "to"}
    webhook_operations = {key: op for key, op in _operations(document).items() if key[1].startswith("/api/webhooks")}
    assert len(webhook_operations) == 9
    assert all(op["x-accepts-api-key"] is False for op in webhook_operations.values())
    assert document["paths"]["/api/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/CreatedWebhookOut")
