"""application/problem+json at the edge: the OpenAPI description of error bodies, and the few gateway-specific
status overrides applied on top of the shared DomainError handler."""

from __future__ import annotations

from typing import Any

from eva_common.errors import DomainError
from eva_common.http.problem import PROBLEM_MEDIA_TYPE, problem
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.ratelimits import Quota, RateLimited

# Codes whose HTTP status differs from their DomainError class's default at the edge.
STATUS_BY_CODE: dict[str, int] = {"TENANT_REQUIRED": 409, "MEDIA_NOT_READY": 409}
TITLE_BY_CODE: dict[str, str] = {"TENANT_REQUIRED": "Tenant required", "MEDIA_NOT_READY": "Media not ready"}

_DESCRIPTIONS = {
    400: "Invalid request (code VALIDATION_FAILED, with `errors`: the fields at fault)",
    401: "Missing, expired, revoked or invalid credentials (UNAUTHENTICATED, TOKEN_EXPIRED, TOKEN_INVALID, "
         "TOKEN_REVOKED, or auth's code for a wrong password or an unknown API key)",
    403: "The caller may not do this (FORBIDDEN_ROLE; API_KEY_NOT_ALLOWED for an API key on an endpoint that does "
         "not take keys; SCOPE_MISSING for a key without the endpoint's scope)",
    404: "Not found (NOT_FOUND or a more specific code)",
    409: "Conflict (ALREADY_EXISTS, TENANT_REQUIRED, MEDIA_NOT_READY, …)",
    413: "Request body over the size limit (PAYLOAD_TOO_LARGE)",
    422: "The request cannot be applied in the current state (FAILED_PRECONDITION, …)",
    429: "Too many requests (RATE_LIMITED, or an upstream's code such as LOGIN_THROTTLED); `Retry-After` gives the "
         "seconds to wait",
    503: "An upstream service is unavailable (UPSTREAM_UNAVAILABLE), or too busy to take the request now "
         "(OVERLOADED, with Retry-After: nothing was done, retry)",
    504: "An upstream service did not answer in time (UPSTREAM_TIMEOUT)",
}
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"description": "Requests allowed per minute by the limit closest to running out",
                        "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in the current window of that limit",
                            "schema": {"type": "integer"}},
}
_RETRY_AFTER_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}},
    **RATE_LIMIT_HEADERS,
}
# Errors every authenticated /api/* endpoint may answer, and every public /auth/* endpoint.
API_ERRORS = (401, 403, 429, 503, 504)
AUTH_ERRORS = (400, 413, 429, 503, 504)


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details with a stable machine `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a route: each error status it may answer, described as a Problem."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        responses[status] = {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status == 429:
            responses[status]["headers"] = _RETRY_AFTER_HEADERS
    return responses


def api_problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """problem_responses of an authenticated /api/* endpoint: API_ERRORS plus its own."""
    return problem_responses(*API_ERRORS, *statuses)


def auth_problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """problem_responses of an /auth/* endpoint: AUTH_ERRORS plus its own."""
    return problem_responses(*AUTH_ERRORS, *statuses)


def domain_error_response(error: DomainError, *, quota: Quota | None = None) -> JSONResponse:
    status = STATUS_BY_CODE.get(error.code, error.http_status)
    response = problem(status, error.code, TITLE_BY_CODE.get(error.code, error.title), error.detail, **error.extra)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after is not None:  # ours (RATE_LIMITED) or an upstream's (LOGIN_THROTTLED, …)
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, RateLimited):
        response.headers.update(error.headers)
    elif quota is not None:  # the call was counted before it failed
        response.headers.update(quota.headers())
    return response


def install_problem_overrides(app: FastAPI) -> None:
    """Replaces the shared DomainError handler with one that applies STATUS_BY_CODE (same body shape and headers:
    Retry-After from `retry_after`, plus the RateLimit-* headers of the edge's own limits)."""

    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, error: DomainError) -> JSONResponse:
        return domain_error_response(error, quota=getattr(request.state, "rate_limit_quota", None))


def tidy_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Errors are documented as application/problem+json only, and FastAPI's default 422 validation response is
    dropped (validation failures answer 400 VALIDATION_FAILED)."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for response in responses.values():
                content = response.get("content", {})
                if PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema
