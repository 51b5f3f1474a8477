"""The auth service's composition root (on eva_common.runtime's skeleton): settings -> engine, Redis (revocation
times, login throttle), signing keys, token issuer, tenant client (with auth's own service token), gRPC server and
HTTP (JWKS, health, metrics); worker: the audit outbox relay. Nothing connects before start()."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from eva_common.auth import RedisRevocations, TokenVerifier
from eva_common.db import database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.housekeeping import Retention
from eva_common.http.app import create_http_app
from eva_common.outbox import OutboxRelay
from eva_common.ratelimit import Limit, RateLimiter
from eva_common.redis import redis_ready
from eva_common.runtime import ServiceApp, Worker, run_service

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


class AuthApp(ServiceApp):
    """Everything the process runs, built but not started (nothing connects before start()). `passwords` is
    injectable for tests (a cheaper hasher)."""

    def __init__(self, settings: Settings, *, passwords: Passwords | None = None) -> None:
        super().__init__(settings)
        self.engine = engine = self.postgres(settings)
        sessions = session_factory(engine)
        redis = self.redis(settings)
        revocations = RedisRevocations(redis)
        self.keys = keys = key_ring(settings)
        tokens = token_issuer(settings, keys)
        passwords = passwords or Passwords()
        tenant_channel = create_channel(settings.tenant_grpc_target)
        self.on_close("tenant channel", tenant_channel.close)
        tenants = GrpcTenantDirectory(
            channel=tenant_channel,
            service_token=SelfServiceToken(issuer=tokens, service_name=settings.service_name),
            timeout=settings.grpc_deadline_seconds,
        )
        self.audit = AuditLog(sessions=sessions, topic=settings.audit_events_topic)
        throttle = LoginThrottle(
            limiter=RateLimiter(redis, prefix="auth:rl"),
            account_limit=Limit(settings.login_max_failures, settings.login_failure_window_seconds),
            ip_limit=Limit(settings.login_ip_max_attempts, settings.login_ip_window_seconds),
        )
        self.service = AuthService(
            sessions=sessions,
            passwords=passwords,
            tokens=tokens,
            tenants=tenants,
            throttle=throttle,
            audit_log=self.audit,
            service_clients={name: secret.get_secret_value() for name, secret in settings.service_clients.items()},
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            refresh_reuse_grace_seconds=settings.refresh_reuse_grace_seconds,
        )
        self.users = UserAdmin(
            sessions=sessions, passwords=passwords, tenants=tenants, revocations=revocations, audit_log=self.audit
        )
        # Callers are verified against auth's own keys (no round trip to itself) and the revocation times in Redis.
        verifier = TokenVerifier(
            jwks_source=keys.jwks_source(), issuer=settings.jwt_issuer, audience=settings.jwt_audience,
            revocations=revocations,
        )
        self.grpc_server = GrpcServer(
            registrars=[registrar(AuthServicer(service=self.service, users=self.users, keys=keys))],
            service_names=[SERVICE_NAME],
            verifier=verifier,
            public_methods=PUBLIC_METHODS,
            host=settings.grpc_host,
            port=settings.grpc_port,
        )
        publisher = self.kafka_publisher(settings)
        self.outbox = OutboxRelay(engine=engine, publisher=publisher, poll_seconds=settings.outbox_poll_seconds,
                                  retention=Retention.of(settings))
        self.http_app = create_http_app(
            title="eva-auth",
            readiness=self.readiness(postgres=lambda: database_ready(engine), redis=lambda: redis_ready(redis),
                                     kafka=lambda: publisher.ready(settings.audit_events_topic)),
            routers=[jwks_router(keys)],
        )

    def workers(self) -> Mapping[str, Worker]:
        return {"audit_outbox": self.outbox}

    async def drain(self) -> None:
        await self.audit.drain(timeout=self.settings.shutdown_grace_seconds)


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


def run() -> None:
    run_service(get_settings, AuthApp, name="auth")
