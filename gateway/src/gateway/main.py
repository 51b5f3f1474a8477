"""Composition root of the gateway: settings → Redis (revocation times, rate limits), upstream channels, token
verifier, the ASGI app (REST + Socket.io) served by uvicorn; graceful shutdown on SIGTERM (sockets closed, requests
drained, channels closed)."""

from __future__ import annotations

import asyncio
import logging

from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.ratelimit import RateLimiter
from eva_common.redis import create_redis
from eva_common.runtime import HttpServer, bootstrap_process, wait_for_shutdown

from gateway.app import create_gateway_app
from gateway.clients import UpstreamClients
from gateway.settings import Settings, get_settings

logger = logging.getLogger("gateway")


async def serve(settings: Settings) -> None:
    redis = create_redis(settings.redis_url)
    clients = UpstreamClients(
        targets=settings.upstream_targets,
        deadline_seconds=settings.grpc_deadline_seconds,
        health_timeout_seconds=settings.health_check_timeout_seconds,
        stream_deadline_seconds=settings.media_stream_deadline_seconds,
    )
    verifier = TokenVerifier(
        jwks_source=grpc_jwks_source(lambda: clients.channel("auth")),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=RedisRevocations(redis),
    )
    limiter = RateLimiter(redis, prefix=settings.rate_limit_prefix)
    gateway = create_gateway_app(settings=settings, clients=clients, verifier=verifier, redis=redis, limiter=limiter)
    # The gateway reads X-Forwarded-For itself, only from EVA_TRUSTED_PROXIES (client_context.TrustedProxies).
    http = HttpServer(gateway.asgi, host=settings.http_host, port=settings.http_port, proxy_headers=False)
    await http.start()
    logger.info("gateway ready", extra={"port": settings.http_port})
    try:
        await wait_for_shutdown()
        logger.info("gateway shutting down")
    finally:
        await gateway.sockets.close()
        await http.stop()
        await clients.close()
        await redis.aclose()


def run() -> None:
    settings = get_settings()
    bootstrap_process(settings)
    asyncio.run(serve(settings))
