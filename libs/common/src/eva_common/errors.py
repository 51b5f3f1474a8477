"""Domain errors, mapped once to gRPC status and HTTP status.

Services raise these; one gRPC interceptor and one HTTP exception handler translate them, and the gateway turns
a gRPC error back into the same DomainError (so its stable `code` survives the hop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

ERROR_CODE_METADATA_KEY = "eva-error-code"
RETRY_AFTER_METADATA_KEY = "eva-retry-after"
EXTRA_METADATA_KEY = "eva-error-extra"  # JSON object: the error's machine-readable facts (e.g. windowClosedAt)


class DomainError(Exception):
    grpc_status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    http_status: int = 500
    default_code: str = "INTERNAL"
    title: str = "Internal error"

    def __init__(
        self, detail: str, *, code: str | None = None, retry_after: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.retry_after = retry_after  # seconds; sent as Retry-After over HTTP
        # camelCase facts a client can act on, added to the problem+json body (e.g. {"windowClosedAt": "…"})
        self.extra: dict[str, Any] = dict(extra or {})


class InvalidArgument(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.INVALID_ARGUMENT, 400, "VALIDATION_FAILED", "Invalid request")


class Unauthenticated(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.UNAUTHENTICATED, 401, "UNAUTHENTICATED", "Authentication required")


class PermissionDenied(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.PERMISSION_DENIED, 403, "FORBIDDEN", "Forbidden")


class NotFound(DomainError):
    grpc_status, http_status, default_code, title = (grpc.StatusCode.NOT_FOUND, 404, "NOT_FOUND", "Not found")


class AlreadyExists(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.ALREADY_EXISTS, 409, "ALREADY_EXISTS", "Conflict")


class FailedPrecondition(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.FAILED_PRECONDITION, 422, "FAILED_PRECONDITION", "Request cannot be applied")


class ResourceExhausted(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "RATE_LIMITED", "Too many requests")


class Overloaded(DomainError):
    """Shed by admission control before any of the request's work was done: nothing happened, retry after a while.
    RESOURCE_EXHAUSTED over gRPC (which the channels do not retry on their own, unlike UNAVAILABLE), 503 over HTTP."""

    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.RESOURCE_EXHAUSTED, 503, "OVERLOADED", "Service overloaded")


class Unavailable(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.UNAVAILABLE, 503, "UNAVAILABLE", "Service unavailable")


class DeadlineExceeded(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.DEADLINE_EXCEEDED, 504, "UPSTREAM_TIMEOUT", "Upstream timeout")


class Internal(DomainError):
    pass


_BY_GRPC_STATUS: dict[grpc.StatusCode, type[DomainError]] = {
    cls.grpc_status: cls
    for cls in (InvalidArgument, Unauthenticated, PermissionDenied, NotFound, AlreadyExists,
                FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded)
}


def from_grpc(
    status: grpc.StatusCode, details: str | None, code: str | None, retry_after: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> DomainError:
    """Rebuilds the DomainError a downstream service raised from its gRPC status and error-code metadata."""
    cls = Overloaded if code == Overloaded.default_code else _BY_GRPC_STATUS.get(status, Internal)
    if cls is Internal:
        return Internal("upstream error", code="INTERNAL")
    return cls(details or cls.title, code=code, retry_after=retry_after, extra=extra)
