"""The auth service's composition root: settings -> engine, signing keys, token issuer, tenant client (with
auth's own service token), gRPC server and HTTP (JWKS, health, metrics); graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from eva_common.auth import TokenVerifier
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.runtime import HttpServer, bootstrap_process, wait_for_shutdown
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.api import jwks_router
from auth_service.clients import GrpcTenantDirectory
from auth_service.grpc_server import PUBLIC_METHODS, SERVICE_NAME, AuthServicer, registrar
from auth_service.passwords import Passwords
from auth_service.service import AuthService
from auth_service.settings import Settings, get_settings
from auth_service.tokens import KeyRing, SelfServiceToken, SigningKey, TokenIssuer

logger = logging.getLogger("auth.main")


@dataclass
class Runtime:
    """Everything the process runs, built but not started (nothing connects before start())."""

    settings: Settings
    engine: AsyncEngine
    keys: KeyRing
    service: AuthService
    grpc_server: GrpcServer
    http_app: FastAPI
    tenant_channel: grpc.aio.Channel

    async def start(self) -> None:
        await self.grpc_server.start()

    async def stop(self) -> None:
        """Stops accepting calls, lets the running ones finish, then closes the connections."""
        await self.grpc_server.stop(self.settings.shutdown_grace_seconds)
        await self.tenant_channel.close()
        await self.engine.dispose()


def key_ring(settings: Settings) -> KeyRing:
    return KeyRing([SigningKey(kid=entry.kid, private_key=entry.private_key()) for entry in settings.jwt_signing_keys])


def build(settings: Settings, *, passwords: Passwords | None = None) -> Runtime:
    engine = create_engine(settings.database_url.get_secret_value())
    keys = key_ring(settings)
    tokens = TokenIssuer(
        keys=keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        service_ttl_seconds=settings.service_token_ttl_seconds,
    )
    tenant_channel = create_channel(settings.tenant_grpc_target)
    service = AuthService(
        sessions=session_factory(engine),
        passwords=passwords or Passwords(),
        tokens=tokens,
        tenants=GrpcTenantDirectory(
            channel=tenant_channel,
            service_token=SelfServiceToken(issuer=tokens, service_name=settings.service_name),
            timeout=settings.grpc_deadline_seconds,
        ),
        service_clients={name: secret.get_secret_value() for name, secret in settings.service_clients.items()},
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )
    # GetMe's callers are verified against auth's own keys: no round trip to itself.
    verifier = TokenVerifier(
        jwks_source=keys.jwks_source(), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    grpc_server = GrpcServer(
        registrars=[registrar(AuthServicer(service=service, keys=keys))],
        service_names=[SERVICE_NAME],
        verifier=verifier,
        public_methods=PUBLIC_METHODS,
        host=settings.grpc_host,
        port=settings.grpc_port,
    )

    async def postgres_ready() -> bool:
        return await database_ready(engine)

    http_app = create_http_app(title="eva-auth", readiness={"postgres": postgres_ready}, routers=[jwks_router(keys)])
    return Runtime(
        settings=settings, engine=engine, keys=keys, service=service, grpc_server=grpc_server, http_app=http_app,
        tenant_channel=tenant_channel,
    )


async def serve(settings: Settings) -> None:
    runtime = build(settings)
    http = HttpServer(runtime.http_app, host=settings.http_host, port=settings.http_port)
    try:
        await runtime.start()
        await http.start()
        logger.info(
            "auth service started",
            extra={"grpc_port": runtime.grpc_server.port, "http_port": settings.http_port,
                   "signing_kid": runtime.keys.active.kid},
        )
        await wait_for_shutdown()
        logger.info("auth service stopping")
    finally:
        await runtime.stop()
        await http.stop()
    logger.info("auth service stopped")


def run() -> None:
    settings = get_settings()
    bootstrap_process(settings)
    asyncio.run(serve(settings))
