"""HTTP app factory: /healthz (alive), /readyz (dependencies), /metrics, request ids, traces, access metrics,
and DomainError → application/problem+json, for every service that speaks HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from eva_common.context import new_request_id, request_id_var
from eva_common.errors import DomainError
from eva_common.http.problem import problem
from eva_common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from eva_common.telemetry import extract_context

logger = logging.getLogger("eva.http")

ReadinessCheck = Callable[[], Awaitable[bool]]

_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                 429: "RATE_LIMITED", 503: "UNAVAILABLE"}


async def run_checks(checks: Mapping[str, ReadinessCheck], timeout: float = 2.0) -> dict[str, str]:
    async def one(check: ReadinessCheck) -> str:
        try:
            return "ok" if await asyncio.wait_for(check(), timeout) else "down"
        except Exception as error:
            return f"down: {type(error).__name__}"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


def create_http_app(
    *,
    title: str,
    readiness: Mapping[str, ReadinessCheck],
    routers: Iterable[APIRouter] = (),
    lifespan: Any = None,
    docs: bool = False,
    version: str = "0.1.0",
    docs_prefix: str = "",
) -> FastAPI:
    """`docs`: the OpenAPI document at `<docs_prefix>/openapi.json` and its page at `<docs_prefix>/docs`."""
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        docs_url=f"{docs_prefix}/docs" if docs else None,
        redoc_url=None,
        openapi_url=f"{docs_prefix}/openapi.json" if docs else None,
    )
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await run_checks(readiness)
        ready = all(state == "ok" for state in checks.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    install_error_handlers(app)
    install_request_middleware(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def on_domain_error(_: Request, error: DomainError) -> JSONResponse:
        response = problem(error.http_status, error.code, error.title, error.detail, **error.extra)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in item.get("loc", ()) if part != "body"), "message": item.get("msg")}
            for item in error.errors()
        ]
        return problem(400, "VALIDATION_FAILED", "Invalid request", "the request failed validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "HTTP_ERROR")
        return problem(error.status_code, code, str(error.detail), str(error.detail))

    @app.exception_handler(Exception)
    async def on_crash(_: Request, error: Exception) -> JSONResponse:
        logger.exception("request crashed", exc_info=error)
        return problem(500, "INTERNAL", "Internal error", "an unexpected error occurred")


def install_request_middleware(app: FastAPI) -> None:
    app.add_middleware(RequestObserver)


class RequestObserver:
    """Every HTTP request gets its id (`X-Request-Id`, taken from the caller when sane), a server span continuing the
    caller's trace, its access metrics and one access log line. A plain ASGI middleware: Starlette's
    `BaseHTTPMiddleware` (`@app.middleware("http")`) runs the rest of the app in a task of its own behind memory
    streams, which cost more CPU per request than everything this does."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", ())}
        incoming = headers.get("x-request-id")
        request_id = incoming if incoming and len(incoming) <= 128 else new_request_id()
        request_token = request_id_var.set(request_id)
        otel_token = otel_context.attach(extract_context(headers))
        method = scope.get("method", "")
        started = time.perf_counter()
        status = 500
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            with trace.get_tracer("eva.http").start_as_current_span(
                f"{method} {scope.get('path', '')}", kind=trace.SpanKind.SERVER
            ):
                await self._app(scope, receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(elapsed)
            if template not in ("/healthz", "/readyz", "/metrics"):
                logger.info("request", extra={"method": method, "route": template, "status": status,
                                              "ms": round(elapsed * 1000, 2)})
            otel_context.detach(otel_token)
            request_id_var.reset(request_token)
