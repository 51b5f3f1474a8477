"""gRPC client channels with retries on UNAVAILABLE, deadlines, and metadata carrying token, request id and trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from eva_common.context import current_request_id
from eva_common.errors import (
    ERROR_CODE_METADATA_KEY,
    EXTRA_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    DeadlineExceeded,
    DomainError,
    Unavailable,
    from_grpc,
)
from eva_common.grpc.metadata import REQUEST_ID_KEY
from eva_common.telemetry import inject_carrier

T = TypeVar("T")

_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def create_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            # reconnect within seconds after a peer restarts (gRPC's default backoff grows to two minutes)
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 3_000),
        ],
    )


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    entries: list[tuple[str, str]] = []
    if token:
        entries.append(("authorization", f"Bearer {token}"))
    request_id = current_request_id()
    if request_id:
        entries.append((REQUEST_ID_KEY, request_id))
    entries.extend(inject_carrier().items())
    return tuple(entries)


async def rpc(
    method: Callable[..., Awaitable[T]], request: Any, *, token: str | None, timeout: float
) -> T:
    """Calls one unary method, turning a gRPC failure back into the DomainError the callee raised."""
    try:
        return await method(request, metadata=call_metadata(token), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        raise domain_error_from_rpc(error) from error


async def upload_rpc(
    method: Callable[..., Awaitable[T]], requests: AsyncIterable[Any], *, token: str | None, timeout: float,
    metadata: Sequence[tuple[str, str]] = (),
) -> T:
    """Calls one client-streaming method with the messages of `requests` (read as the call sends them, so a large
    upload is never held whole), turning a gRPC failure back into the DomainError the callee raised."""
    try:
        return await method(requests, metadata=(*call_metadata(token), *metadata), timeout=timeout)
    except grpc.aio.AioRpcError as error:
        raise domain_error_from_rpc(error) from error


def domain_error_from_rpc(error: grpc.aio.AioRpcError) -> DomainError:
    code = None
    retry_after = None
    extra: dict[str, Any] | None = None
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_CODE_METADATA_KEY and isinstance(value, str):
            code = value
        elif key == RETRY_AFTER_METADATA_KEY and isinstance(value, str) and value.isdigit():
            retry_after = int(value)
        elif key == EXTRA_METADATA_KEY and isinstance(value, str):
            extra = _json_object(value)
    status = error.code()
    if status == grpc.StatusCode.UNAVAILABLE and code is None:
        return Unavailable("a dependency is unavailable", code="UPSTREAM_UNAVAILABLE")
    if status == grpc.StatusCode.DEADLINE_EXCEEDED and code is None:
        return DeadlineExceeded("a dependency did not answer in time", code="UPSTREAM_TIMEOUT")
    return from_grpc(status, error.details(), code, retry_after, extra)


def _json_object(value: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
