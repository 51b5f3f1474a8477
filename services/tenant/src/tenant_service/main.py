"""The tenant service's composition root: settings -> engine, sealing keys, token verifier (auth's JWKS over
gRPC), outbox worker, gRPC server and HTTP health/metrics; graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from eva_common.auth import TokenVerifier, grpc_jwks_source
from eva_common.db import create_engine, database_ready, session_factory
from eva_common.grpc.client import create_channel
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import create_http_app
from eva_common.runtime import HttpServer, bootstrap_process, wait_for_shutdown
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.events import TOPIC
from tenant_service.grpc_server import SERVICE_NAME, TenantServicer, registrar
from tenant_service.relay import OutboxWorker
from tenant_service.service import TenantService
from tenant_service.settings import Settings, get_settings

logger = logging.getLogger("tenant.main")


@dataclass
class Runtime:
    """Everything the process runs, built but not started (nothing connects before start())."""

    settings: Settings
    engine: AsyncEngine
    service: TenantService
    grpc_server: GrpcServer
    http_app: FastAPI
    outbox: OutboxWorker
    auth_channel: grpc.aio.Channel

    async def start(self) -> None:
        self.outbox.start()
        await self.grpc_server.start()

    async def stop(self) -> None:
        """Stops accepting calls, lets the running ones finish, then closes the connections."""
        await self.grpc_server.stop(self.settings.shutdown_grace_seconds)
        await self.outbox.stop(self.settings.shutdown_grace_seconds)
        await self.auth_channel.close()
        await self.engine.dispose()


def build(settings: Settings, *, events_topic: str = TOPIC) -> Runtime:
    engine = create_engine(settings.database_url.get_secret_value())
    service = TenantService(
        sessions=session_factory(engine),
        secrets=SecretBox(keys=settings.encryption_key_bytes(), active_key_id=settings.encryption_active_key),
        lookup=LookupHasher(key=settings.lookup_key_bytes()),
        events_topic=events_topic,
    )
    auth_channel = create_channel(settings.auth_grpc_target)
    verifier = TokenVerifier(
        jwks_source=grpc_jwks_source(lambda: auth_channel, timeout=settings.grpc_deadline_seconds),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    outbox = OutboxWorker(
        engine=engine, bootstrap=settings.kafka_bootstrap, client_id=settings.service_name,
        poll_seconds=settings.outbox_poll_seconds, ready_topic=events_topic,
    )
    grpc_server = GrpcServer(
        registrars=[registrar(TenantServicer(service=service))],
        service_names=[SERVICE_NAME],
        verifier=verifier,
        host=settings.grpc_host,
        port=settings.grpc_port,
    )

    async def postgres_ready() -> bool:
        return await database_ready(engine)

    http_app = create_http_app(title="eva-tenant", readiness={"postgres": postgres_ready, "kafka": outbox.ready})
    return Runtime(
        settings=settings, engine=engine, service=service, grpc_server=grpc_server, http_app=http_app,
        outbox=outbox, auth_channel=auth_channel,
    )


async def serve(settings: Settings) -> None:
    runtime = build(settings)
    http = HttpServer(runtime.http_app, host=settings.http_host, port=settings.http_port)
    try:
        await runtime.start()
        await http.start()
        logger.info("tenant service started", extra={"grpc_port": runtime.grpc_server.port,
                                                     "http_port": settings.http_port})
        await wait_for_shutdown()
        logger.info("tenant service stopping")
    finally:
        await runtime.stop()
        await http.stop()
    logger.info("tenant service stopped")


def run() -> None:
    settings = get_settings()
    bootstrap_process(settings)
    asyncio.run(serve(settings))
