"""The auth service's composition root: settings -> engine, Redis (revocation times, login throttle), signing keys,
token issuer, tenant client (with auth's own service token), audit outbox worker, gRPC server and HTTP (JWKS,
health, metrics); graceful shutdown on SIGTERM. Nothing connects before start()."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from eva_common.auth import RedisRevocations, TokenVerifier
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxWorker
from eva_common.ratelimit import Limit, RateLimiter
from eva_common.redis import create_redis, redis_ready
from eva_common.runtime import HttpServer, bootstrap_process, load_settings, serve_until_shutdown
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.api import jwks_router
from auth_service.audit import AuditLog
from auth_service.clients import GrpcTenantDirectory
from auth_service.grpc_server import PUBLIC_METHODS, SERVICE_NAME, AuthServicer, registrar
from auth_service.passwords import Passwords
from auth_service.service import AuthService
from auth_service.settings import Settings, get_settings
from auth_service.throttle import LoginThrottle
from auth_service.tokens import KeyRing, SelfServiceToken, SigningKey, TokenIssuer
from auth_service.users import UserAdmin

logger = logging.getLogger("auth.main")


@dataclass
class Runtime:
    """Everything the process runs, built but not started (nothing connects before start())."""

    settings: Settings
    engine: AsyncEngine
    redis: Redis
    keys: KeyRing
    service: AuthService
    users: UserAdmin
    audit: AuditLog
    outbox: OutboxWorker
    grpc_server: GrpcServer
    http_app: FastAPI
    tenant_channel: grpc.aio.Channel
    _http: HttpServer | None = field(default=None, init=False)

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]:
        return [self.outbox.task] if self.outbox.task is not None else []

    async def start(self, *, serve_http: bool = False) -> None:
        self.outbox.start()
        await self.grpc_server.start()
        if serve_http:
            self._http = HttpServer(self.http_app, host=self.settings.http_host, port=self.settings.http_port)
            await self._http.start()
        logger.info(
            "auth service started",
            extra={"grpc_port": self.grpc_server.port, "http_port": self.settings.http_port,
                   "signing_kid": self.keys.active.kid},
        )

    async def stop(self) -> None:
        """Stops accepting calls, lets the running ones finish, then closes the connections."""
        grace = self.settings.shutdown_grace_seconds
        await self.grpc_server.stop(grace)
        await self.audit.drain(timeout=grace)
        await self.outbox.stop(timeout=grace)
        if self._http is not None:
            await self._http.stop()
        await self.tenant_channel.close()
        await self.redis.aclose()
        await self.engine.dispose()
        logger.info("auth service stopped")


def key_ring(settings: Settings) -> KeyRing:
    return KeyRing([SigningKey(kid=entry.kid, private_key=entry.private_key()) for entry in settings.jwt_signing_keys])


def token_issuer(settings: Settings, keys: KeyRing) -> TokenIssuer:
    return TokenIssuer(
        keys=keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        service_ttl_seconds=settings.service_token_ttl_seconds,
        api_key_ttl_seconds=settings.api_key_token_ttl_seconds,
    )


def build(settings: Settings, *, passwords: Passwords | None = None) -> Runtime:
    engine = create_engine(settings.database_url.get_secret_value())
    sessions = session_factory(engine)
    redis = create_redis(settings.redis_url)
    revocations = RedisRevocations(redis)
    keys = key_ring(settings)
    tokens = token_issuer(settings, keys)
    passwords = passwords or Passwords()
    tenant_channel = create_channel(settings.tenant_grpc_target)
    tenants = GrpcTenantDirectory(
        channel=tenant_channel,
        service_token=SelfServiceToken(issuer=tokens, service_name=settings.service_name),
        timeout=settings.grpc_deadline_seconds,
    )
    audit_log = AuditLog(sessions=sessions, topic=settings.audit_events_topic)
    throttle = LoginThrottle(
        limiter=RateLimiter(redis, prefix="auth:rl"),
        account_limit=Limit(settings.login_max_failures, settings.login_failure_window_seconds),
        ip_limit=Limit(settings.login_ip_max_attempts, settings.login_ip_window_seconds),
    )
    service = AuthService(
        sessions=sessions,
        passwords=passwords,
        tokens=tokens,
        tenants=tenants,
        throttle=throttle,
        audit_log=audit_log,
        service_clients={name: secret.get_secret_value() for name, secret in settings.service_clients.items()},
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )
    users = UserAdmin(
        sessions=sessions, passwords=passwords, tenants=tenants, revocations=revocations, audit_log=audit_log
    )
    # Callers are verified against auth's own keys (no round trip to itself) and the revocation times in Redis.
    verifier = TokenVerifier(
        jwks_source=keys.jwks_source(), issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        revocations=revocations,
    )
    grpc_server = GrpcServer(
        registrars=[registrar(AuthServicer(service=service, users=users, keys=keys))],
        service_names=[SERVICE_NAME],
        verifier=verifier,
        public_methods=PUBLIC_METHODS,
        host=settings.grpc_host,
        port=settings.grpc_port,
    )
    outbox = OutboxWorker(
        engine=engine, bootstrap=settings.kafka_bootstrap, client_id=settings.service_name,
        poll_seconds=settings.outbox_poll_seconds, ready_topic=settings.audit_events_topic,
    )

    async def postgres_ready() -> bool:
        return await database_ready(engine)

    async def redis_up() -> bool:
        return await redis_ready(redis)

    http_app = create_http_app(
        title="eva-auth",
        readiness={"postgres": postgres_ready, "redis": redis_up, "kafka": outbox.ready},
        routers=[jwks_router(keys)],
    )
    return Runtime(
        settings=settings, engine=engine, redis=redis, keys=keys, service=service, users=users, audit=audit_log,
        outbox=outbox, grpc_server=grpc_server, http_app=http_app, tenant_channel=tenant_channel,
    )


class _Process:
    """The runtime with its HTTP server, as serve_until_shutdown runs it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]:
        return self._runtime.tasks

    async def start(self) -> None:
        await self._runtime.start(serve_http=True)

    async def stop(self) -> None:
        await self._runtime.stop()


async def serve(settings: Settings) -> int:
    return await serve_until_shutdown(_Process(build(settings)))


def run() -> None:
    settings = load_settings(get_settings, "auth")
    bootstrap_process(settings)
    raise SystemExit(asyncio.run(serve(settings)))
