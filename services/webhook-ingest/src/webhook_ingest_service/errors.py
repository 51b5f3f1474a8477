"""Errors of the ingest use cases (mapped to problem+json by the shared HTTP handlers)."""

from __future__ import annotations

import grpc
from eva_common.errors import DomainError, ResourceExhausted, Unauthenticated, Unavailable


class PayloadTooLarge(DomainError):
    grpc_status, http_status, default_code, title = (
        grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "PAYLOAD_TOO_LARGE", "Payload too large")


class SignatureInvalid(Unauthenticated):
    default_code = "SIGNATURE_INVALID"
    title = "Signature invalid"


class RetryLater(Unavailable):
    """Meta should deliver again later (HTTP 503 with Retry-After)."""

    def __init__(self, detail: str, *, retry_after_seconds: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_seconds = retry_after_seconds


class TooManyUnverified(ResourceExhausted):
    """A client sent too many requests that failed verification (HTTP 429 with Retry-After)."""

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, code="RATE_LIMITED")
        self.retry_after_seconds = retry_after_seconds
