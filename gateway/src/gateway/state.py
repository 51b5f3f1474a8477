"""What the composition root hands to the routes (kept on app.state.gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from eva_common.admission import AdmissionGate
from eva_common.auth import TokenVerifier
from eva_common.realtime.presence import PresenceStore
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from gateway.apikeys import ApiKeyExchange
from gateway.client_context import TrustedProxies
from gateway.clients import UpstreamClients
from gateway.ratelimits import EdgeLimits
from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class GatewayState:
    settings: Settings
    clients: UpstreamClients
    verifier: TokenVerifier
    redis: Redis
    limits: EdgeLimits
    api_keys: ApiKeyExchange
    proxies: TrustedProxies
    presence: PresenceStore
    sends: AdmissionGate  # POST /api/messages and retries, in front of messaging's own gate


def gateway_state(connection: HTTPConnection) -> GatewayState:
    return cast(GatewayState, connection.app.state.gateway)
