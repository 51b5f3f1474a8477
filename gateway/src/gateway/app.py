"""Assembles the gateway's ASGI app from the collaborators the composition root built:
the FastAPI REST app (shared health, metrics, problem+json, request ids) wrapped with Socket.io."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import socketio
from eva_common.auth import TokenVerifier
from eva_common.http.app import create_http_app
from eva_common.redis import redis_ready
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from gateway.clients import UpstreamClients
from gateway.middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from gateway.problems import install_problem_overrides, tidy_openapi
from gateway.routes import ROUTERS
from gateway.settings import Settings
from gateway.sio import SocketGateway
from gateway.state import GatewayState

ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "traceparent", "tracestate"]
SOCKET_MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class GatewayApp:
    asgi: ASGIApp  # what uvicorn serves: Socket.io on /socket.io, the REST API elsewhere
    api: FastAPI
    sockets: SocketGateway


def create_socket_server(settings: Settings) -> Any:
    """Socket.io over the Redis manager, so every replica (and realtime's write-only manager) shares the rooms."""
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=socketio.AsyncRedisManager(settings.redis_url, channel=settings.socketio_channel),
        cors_allowed_origins=settings.frontend_origins,
        max_http_buffer_size=SOCKET_MAX_MESSAGE_BYTES,
        logger=False,
        engineio_logger=False,
    )


def create_gateway_app(
    *, settings: Settings, clients: UpstreamClients, verifier: TokenVerifier, redis: Redis
) -> GatewayApp:
    sockets = SocketGateway(
        server=create_socket_server(settings),
        verifier=verifier,
        clients=clients,
        auth_timeout_seconds=settings.socket_auth_timeout_seconds,
        sweep_interval_seconds=settings.socket_sweep_interval_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sockets.start()
        try:
            yield
        finally:
            await sockets.close()

    api = create_http_app(
        title="Eva gateway",
        readiness={"redis": partial(redis_ready, redis)},
        routers=ROUTERS,
        lifespan=lifespan,
        docs=True,
    )
    api.state.gateway = GatewayState(settings=settings, clients=clients, verifier=verifier, redis=redis)
    install_problem_overrides(api)
    # Innermost (inside the shared request middleware, so a 413 has a request id and is counted): the limit
    # then fails the body read itself and the shared handler renders the problem.
    api.user_middleware.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes))
    api.add_middleware(
        CORSMiddleware,
        allow_origins=settings.frontend_origins,
        allow_credentials=True,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=["X-Request-Id"],
        max_age=600,
    )
    _install_openapi(api)
    asgi = SecurityHeadersMiddleware(
        socketio.ASGIApp(sockets.server, other_asgi_app=api, socketio_path="socket.io"),
        hsts=settings.environment == "production",
    )
    return GatewayApp(asgi=asgi, api=api, sockets=sockets)


def _install_openapi(api: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, routes=api.routes,
                description="Eva's public REST API. Errors are application/problem+json with a stable `code`.",
            )
            api.openapi_schema = tidy_openapi(schema)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
