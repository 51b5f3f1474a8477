"""API keys at the edge: a key (`X-Api-Key: <key>` or `Authorization: ApiKey <key>`) is exchanged at auth
(AuthService.ExchangeApiKey) for a short-lived access token of type `api_key`, which is verified like any token and
forwarded downstream as the bearer. The exchange and its cache are `eva_common.apikeys` (shared with
n8n-integration's `/n8n/*`); here they call auth through the gateway's upstream clients and count exchanges per
client IP.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from eva.auth.v1 import auth_pb2
from eva_common.apikeys import REFRESH_MARGIN_SECONDS, ApiKeyTokens, TokenCheck, key_digest

from gateway.clients import UpstreamClients
from gateway.ratelimits import EdgeLimits

__all__ = ["REFRESH_MARGIN_SECONDS", "ApiKeyExchange", "TokenCheck", "key_digest"]


class ApiKeyExchange(ApiKeyTokens):
    def __init__(
        self,
        *,
        clients: UpstreamClients,
        verify: TokenCheck,
        limits: EdgeLimits,
        max_entries: int,
        margin_seconds: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        async def exchange(request: auth_pb2.ExchangeApiKeyRequest) -> auth_pb2.ExchangeApiKeyResponse:
            response: auth_pb2.ExchangeApiKeyResponse = await clients.call(
                clients.auth.ExchangeApiKey, request, token=None)
            return response

        super().__init__(exchange=exchange, verify=verify, before_exchange=limits.key_exchange,
                         max_entries=max_entries, margin_seconds=margin_seconds, clock=clock)
