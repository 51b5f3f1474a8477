"""Assembles the gateway's ASGI app from the collaborators the composition root built:
the FastAPI REST app (shared health, metrics, problem+json, request ids) wrapped with Socket.io."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import socketio
from eva_common.admission import AdmissionGate
from eva_common.auth import TokenVerifier
from eva_common.http.app import create_http_app
from eva_common.realtime.presence import PresenceStore
from eva_common.realtime.presence import for_channel as presence_namespace
from eva_common.realtime.rooms import tenant_room
from eva_common.realtime.sequence import ReplayReader
from eva_common.redis import redis_ready
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from gateway.apikeys import ApiKeyExchange
from gateway.auth import verify_token
from gateway.client_context import TrustedProxies
from gateway.clients import UpstreamClients
from gateway.middleware import BodySizeLimitMiddleware, ClientContextMiddleware, SecurityHeadersMiddleware
from gateway.problems import RATE_LIMIT_HEADERS, install_problem_overrides, tidy_openapi
from gateway.ratelimits import EdgeLimits, HitCounter
from gateway.routes import ROUTERS
from gateway.settings import Settings
from gateway.sio import SocketGateway
from gateway.socket_delivery import SocketDelivery
from gateway.socket_limits import SocketRateLimits
from gateway.socket_manager import GatedRedisManager
from gateway.socket_presence import PRESENCE_EVENT, SocketPresence
from gateway.state import GatewayState

ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Api-Key", "X-Request-Id", "traceparent",
                   "tracestate"]
EXPOSED_HEADERS = ["X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining"]
SOCKET_MAX_MESSAGE_BYTES = 64 * 1024
RATE_LIMITED_PREFIXES = ("/api/", "/auth/")


@dataclass(frozen=True, slots=True)
class GatewayApp:
    asgi: ASGIApp  # what uvicorn serves: Socket.io on /socket.io, the REST API elsewhere
    api: FastAPI
    sockets: SocketGateway
    state: GatewayState


def create_socket_server(settings: Settings, delivery: SocketDelivery) -> Any:
    """Socket.io over the Redis manager, so every replica (and realtime's write-only manager) shares the rooms; its
    seq-bearing events go through the delivery gate."""
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=GatedRedisManager(
            settings.redis_url, channel=settings.socketio_channel, delivery=delivery,
            redis_options={"socket_keepalive": True, "health_check_interval": 30},
        ),
        cors_allowed_origins=settings.frontend_origins,
        max_http_buffer_size=SOCKET_MAX_MESSAGE_BYTES,
        logger=False,
        engineio_logger=False,
    )


def create_gateway_app(
    *, settings: Settings, clients: UpstreamClients, verifier: TokenVerifier, redis: Redis, limiter: HitCounter
) -> GatewayApp:
    proxies = TrustedProxies(settings.trusted_proxy_networks)
    limits = EdgeLimits(
        counter=limiter,
        user_per_minute=settings.rate_limit_user_per_minute,
        tenant_per_minute=settings.rate_limit_tenant_per_minute,
        auth_ip_per_minute=settings.rate_limit_auth_ip_per_minute,
    )
    api_keys = ApiKeyExchange(clients=clients, verify=partial(verify_token, verifier), limits=limits,
                              max_entries=settings.api_key_cache_max_entries)
    delivery = SocketDelivery(replay=ReplayReader(redis), page_size=settings.socket_replay_page_size,
                              catch_up_interval_seconds=settings.socket_catch_up_interval_seconds)
    server = create_socket_server(settings, delivery)

    async def announce_presence(tenant_id: str, user_id: str, online: bool) -> None:
        await server.emit(PRESENCE_EVENT, {"userId": user_id, "online": online}, room=tenant_room(tenant_id))

    presence_store = PresenceStore(redis, ttl_seconds=settings.presence_ttl_seconds,
                                   namespace=presence_namespace(settings.socketio_channel))
    sockets = SocketGateway(
        server=server,
        verifier=verifier,
        clients=clients,
        proxies=proxies,
        delivery=delivery,
        presence=SocketPresence(store=presence_store, announce=announce_presence,
                                ttl_seconds=settings.presence_ttl_seconds),
        limits=SocketRateLimits(events_per_second=settings.socket_events_per_second,
                                burst=settings.socket_event_burst),
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
    state = GatewayState(settings=settings, clients=clients, verifier=verifier, redis=redis, limits=limits,
                         api_keys=api_keys, proxies=proxies, presence=presence_store,
                         sends=AdmissionGate("gateway-send", limit=settings.send_admission_concurrency,
                                             max_wait=settings.send_admission_wait_seconds))
    api.state.gateway = state
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
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    _install_openapi(api)
    asgi = ClientContextMiddleware(
        SecurityHeadersMiddleware(
            socketio.ASGIApp(sockets.server, other_asgi_app=api, socketio_path="socket.io"),
            hsts=settings.environment == "production",
        ),
        proxies=proxies,
    )
    return GatewayApp(asgi=asgi, api=api, sockets=sockets, state=state)


def document_access(schema: dict[str, Any]) -> dict[str, Any]:
    """Marks each authenticated operation with `x-accepts-api-key` (and, when true, `x-api-key-scope`: the scope
    its `apiKey` security requirement names), and documents the RateLimit-* headers of counted answers."""
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            requirements = operation.get("security")
            if requirements is not None:
                scopes = [scope for requirement in requirements for scope in requirement.get("apiKey", ())]
                operation["x-accepts-api-key"] = bool(scopes)
                if scopes:
                    operation["x-api-key-scope"] = scopes[0]
            if path.startswith(RATE_LIMITED_PREFIXES):
                for status, response in operation.get("responses", {}).items():
                    if status.startswith("2"):
                        response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    return schema


def _install_openapi(api: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, routes=api.routes,
                description=(
                    "Eva's public REST API. Errors are application/problem+json with a stable `code`. Authenticate "
                    "with `Authorization: Bearer <accessToken>`; the endpoints marked `x-accepts-api-key: true` "
                    "also take a tenant's API key (`X-Api-Key`) with the scope in `x-api-key-scope`. Calls are "
                    "rate-limited (429 RATE_LIMITED with `Retry-After`)."
                ),
            )
            api.openapi_schema = document_access(tidy_openapi(schema))
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
