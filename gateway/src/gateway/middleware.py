"""Edge middleware: the caller's client context, security headers on every HTTP response, and a request body size
limit on the API."""

from __future__ import annotations

from collections.abc import Mapping

from eva_common.http.problem import problem
from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.client_context import TrustedProxies, client_var

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=63072000; includeSubDomains"
# Swagger UI loads its script and styles from a CDN, so the docs pages are served without the strict policy.
CSP_EXEMPT_PREFIXES = ("/docs",)


class ClientContextMiddleware:
    """Sets the caller's address and user agent (client_context.client_var) for the whole request, so every
    upstream call made for it forwards them."""

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = client_var.set(self.proxies.client_of(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            client_var.reset(token)


class SecurityHeadersMiddleware:
    """Adds nosniff, frame denial, no referrer, a strict CSP (except the docs) and HSTS in production."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        strict_csp = not path.startswith(CSP_EXEMPT_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if strict_csp:
                    headers["Content-Security-Policy"] = API_CSP
                if self.hsts:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Routes whose bodies may be larger than the API's limit: POST /api/media takes a file up to WhatsApp's 100 MiB
# (documents) plus the multipart envelope.
MEDIA_UPLOAD_BODY_BYTES = 100 * 1024 * 1024 + 64 * 1024
ROUTE_BODY_LIMITS: Mapping[str, int] = {"/api/media": MEDIA_UPLOAD_BODY_BYTES}


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` (or the route's own limit in `route_limits`, by exact path) with 413
    PAYLOAD_TOO_LARGE (problem+json).

    A declared Content-Length over the limit is refused before anything is read; a body that grows past the limit
    while streaming fails the read, and the shared handler renders the 413.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, route_limits: Mapping[str, int] = ROUTE_BODY_LIMITS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.route_limits = route_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.route_limits.get(path.rstrip("/") or "/", self.max_bytes)
        detail = f"the request body is larger than {limit} bytes"
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem(413, "PAYLOAD_TOO_LARGE", "Payload too large", detail)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
