"""HTTP routes Meta calls: `GET /webhooks/whatsapp` (handshake) and `POST /webhooks/whatsapp` (deliveries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from eva_common.errors import InvalidArgument
from eva_common.http.app import ReadinessCheck, create_http_app
from eva_common.http.problem import problem
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.requests import ClientDisconnect

from webhook_ingest_service.errors import PayloadTooLarge, RetryLater, TooManyUnverified
from webhook_ingest_service.metrics import DELIVERIES, Outcome
from webhook_ingest_service.service import WebhookIngest
from webhook_ingest_service.signature import SIGNATURE_HEADER

router = APIRouter(tags=["webhooks"])


async def get_ingest(request: Request) -> WebhookIngest:  # async: a plain def would run in the thread pool
    ingest: WebhookIngest = request.app.state.ingest
    return ingest


IngestDep = Annotated[WebhookIngest, Depends(get_ingest)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refusing (413) a declared or streamed size over `limit` without buffering past it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidArgument("Content-Length is not a number", code="BAD_REQUEST") from None
        if length > limit:
            DELIVERIES.labels(Outcome.TOO_LARGE).inc()
            raise PayloadTooLarge(f"deliveries are limited to {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                DELIVERIES.labels(Outcome.TOO_LARGE).inc()
                raise PayloadTooLarge(f"deliveries are limited to {limit} bytes")
            body += chunk
    except ClientDisconnect:
        raise InvalidArgument("the client went away before sending the whole body", code="BAD_REQUEST") from None
    return bytes(body)


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
async def verify_subscription(request: Request, ingest: IngestDep) -> PlainTextResponse:
    params = request.query_params
    challenge = await ingest.verify_subscription(
        mode=params.get("hub.mode"),
        verify_token=params.get("hub.verify_token"),
        challenge=params.get("hub.challenge"),
        client_ip=client_ip(request),
    )
    return PlainTextResponse(challenge)


@router.post("/webhooks/whatsapp")
async def receive_delivery(request: Request, ingest: IngestDep) -> JSONResponse:
    body = await read_body(request, limit=request.app.state.max_body_bytes)
    accepted = await ingest.accept_delivery(
        body=body, signature=request.headers.get(SIGNATURE_HEADER), client_ip=client_ip(request)
    )
    return JSONResponse(
        {"status": "accepted", "deliveryIds": list(accepted.delivery_ids), "unroutedIds": list(accepted.unrouted_ids)}
    )


def install_retry_after(app: FastAPI) -> None:
    """The shared problem+json mapping, plus the Retry-After header these two errors carry."""

    async def with_retry_after(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RetryLater | TooManyUnverified)
        response = problem(error.http_status, error.code, error.title, error.detail)
        response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

    app.add_exception_handler(RetryLater, with_retry_after)
    app.add_exception_handler(TooManyUnverified, with_retry_after)


def create_app(*, ingest: WebhookIngest, readiness: Mapping[str, ReadinessCheck], max_body_bytes: int) -> FastAPI:
    """The service's HTTP app: the webhook routes plus the shared /healthz, /readyz and /metrics."""
    app = create_http_app(title="Eva webhook ingest", readiness=readiness, routers=[router])
    app.state.ingest = ingest
    app.state.max_body_bytes = max_body_bytes
    install_retry_after(app)
    return app
