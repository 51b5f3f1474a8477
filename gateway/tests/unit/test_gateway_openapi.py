"""The OpenAPI document: every route declares its response model and its problem+json errors."""

from __future__ import annotations

import httpx

PUBLIC_ROUTES = {
    ("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/refresh"), ("post", "/auth/logout"),
    ("get", "/auth/me"), ("put", "/api/tenant/whatsapp"), ("get", "/api/tenant/whatsapp"),
    ("get", "/api/conversations/{conversation_id}"), ("get", "/api/conversations/{conversation_id}/messages"),
    ("get", "/api/messages"), ("get", "/health"),
}


async def test_every_route_documents_its_success_and_error_bodies(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = {(method, path): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}
    assert PUBLIC_ROUTES <= set(operations)
    for key in PUBLIC_ROUTES:
        responses = operations[key]["responses"]
        assert "422" not in responses, key  # validation failures are 400 problems
        success = [status for status in responses if status.startswith("2")]
        assert len(success) == 1, key
        if success != ["204"]:
            assert responses[success[0]]["content"]["application/json"]["schema"], key
        errors = [status for status in responses if status[0] in "45" and key != ("get", "/health")]
        for status in errors:
            content = responses[status]["content"]
            assert set(content) == {"application/problem+json"}, (key, status)
            assert content["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}


async def test_bodies_are_documented_in_camel_case(http: httpx.AsyncClient) -> None:
    schemas = (await http.get("/openapi.json")).json()["components"]["schemas"]
    assert set(schemas["AuthSessionOut"]["properties"]) == {"accessToken", "refreshToken", "expiresIn", "user",
                                                             "tenant"}
    assert set(schemas["RegisterIn"]["required"]) == {"tenantName", "name", "email", "password"}
    secrets = set(schemas["WhatsAppCredentialsOut"]["properties"])
    assert {"accessToken", "appSecret", "verifyToken"} <= secrets
    assert schemas["MessageOut"]["properties"]["content"]["type"] == "object"


async def test_protected_routes_declare_the_bearer_scheme(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["accessToken"]["scheme"] == "bearer"
    assert document["paths"]["/auth/me"]["get"]["security"] == [{"accessToken": []}]
    assert "security" not in document["paths"]["/auth/login"]["post"]
