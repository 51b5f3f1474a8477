"""Composition root of the gateway (on eva_common.runtime's skeleton): settings → Redis (revocation times, rate
limits), upstream channels, token verifier, the ASGI app (REST + Socket.io) served by uvicorn. On SIGTERM the sockets
are closed first, then requests drain, then the channels close."""

from __future__ import annotations

from eva_common.auth import RedisRevocations, TokenVerifier, grpc_jwks_source
from eva_common.ratelimit import RateLimiter
from eva_common.runtime import ServiceApp, run_service

from gateway.app import create_gateway_app
from gateway.clients import UpstreamClients
from gateway.settings import Settings, get_settings


class GatewayService(ServiceApp):
    """Everything the process runs, built but not started."""

    # The gateway reads X-Forwarded-For itself, only from EVA_TRUSTED_PROXIES (client_context.TrustedProxies).
    proxy_headers = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        redis = self.redis(settings)
        clients = UpstreamClients(
            targets=settings.upstream_targets,
            deadline_seconds=settings.grpc_deadline_seconds,
            health_timeout_seconds=settings.health_check_timeout_seconds,
            stream_deadline_seconds=settings.media_stream_deadline_seconds,
        )
        self.on_close("upstream channels", clients.close)
        verifier = TokenVerifier(
            jwks_source=grpc_jwks_source(lambda: clients.channel("auth")),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            revocations=RedisRevocations(redis),
        )
        limiter = RateLimiter(redis, prefix=settings.rate_limit_prefix)
        self.gateway = create_gateway_app(settings=settings, clients=clients, verifier=verifier, redis=redis,
                                          limiter=limiter)
        self.http_app = self.gateway.asgi

    async def closing(self) -> None:
        await self.gateway.sockets.close()


def run() -> None:
    run_service(get_settings, GatewayService, name="gateway")
