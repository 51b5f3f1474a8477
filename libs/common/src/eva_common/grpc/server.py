"""Builds a grpc.aio server with health, reflection and the Eva interceptor; stops it gracefully."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from eva_common.auth import TokenVerifier
from eva_common.grpc.interceptors import ServerInterceptor

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
Registrar = Callable[[grpc.aio.Server], None]


class GrpcServer:
    def __init__(
        self,
        *,
        registrars: Iterable[Registrar],
        service_names: Iterable[str],
        verifier: TokenVerifier | None,
        public_methods: frozenset[str] = frozenset(),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._server = grpc.aio.server(
            interceptors=[ServerInterceptor(verifier=verifier, public_methods=public_methods)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        for register in registrars:
            register(self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._service_names = list(service_names)
        reflection.enable_server_reflection((*self._service_names, reflection.SERVICE_NAME), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")

    async def start(self) -> None:
        await self._server.start()
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        for name in ("", *self._service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(grace)
