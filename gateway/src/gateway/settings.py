"""Settings of the gateway (all from EVA_* environment variables)."""

from __future__ import annotations

from functools import lru_cache

from eva_common.settings import ServiceSettings
from pydantic import Field

ONE_MIB = 1024 * 1024


class Settings(ServiceSettings):
    service_name: str = "gateway"
    http_port: int = 3001
    tenant_grpc_target: str = "127.0.0.1:50052"
    conversation_grpc_target: str = "127.0.0.1:50053"
    messaging_grpc_target: str = "127.0.0.1:50054"
    # Comma-separated browser origins allowed by CORS and by the Socket.io handshake.
    frontend_url: str = "http://localhost:5173"
    socketio_channel: str = "eva-socketio"
    # An unauthenticated socket (no token in the handshake, or an expired one) must `authenticate` within this time.
    socket_auth_timeout_seconds: float = Field(default=5.0, gt=0)
    # How often connected sockets are checked for an expired access token.
    socket_sweep_interval_seconds: float = Field(default=15.0, gt=0)
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=ONE_MIB, gt=0)

    @property
    def frontend_origins(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.frontend_url.split(",") if origin.strip()]

    @property
    def upstream_targets(self) -> dict[str, str]:
        return {
            "auth": self.auth_grpc_target,
            "tenant": self.tenant_grpc_target,
            "conversation": self.conversation_grpc_target,
            "messaging": self.messaging_grpc_target,
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
