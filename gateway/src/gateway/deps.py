"""Annotated dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from eva_common.admission import AdmissionGate
from eva_common.auth import Principal
from eva_common.identity import (
    SCOPE_CONVERSATIONS_READ,
    SCOPE_CONVERSATIONS_WRITE,
    SCOPE_MESSAGES_READ,
    SCOPE_MESSAGES_SEND,
    SCOPE_USAGE_READ,
)
from fastapi import Depends, Request

from gateway.auth import api_key_access, require_api_user, require_user
from gateway.clients import UpstreamClients
from gateway.state import GatewayState, gateway_state


# Dependencies are `async def`: FastAPI runs a plain `def` one in its thread pool, a thread hop per request.
async def _state(request: Request) -> GatewayState:
    return gateway_state(request)


async def _clients(request: Request) -> UpstreamClients:
    return gateway_state(request).clients


async def _sends(request: Request) -> AdmissionGate:
    return gateway_state(request).sends


StateDep = Annotated[GatewayState, Depends(_state)]
# Admission of sends (POST /api/messages, retries): hold a place around the call to messaging.
SendAdmissionDep = Annotated[AdmissionGate, Depends(_sends)]
ClientsDep = Annotated[UpstreamClients, Depends(_clients)]
# A verified user (not counted: /auth/me, under the per-IP limit of /auth/*).
UserDep = Annotated[Principal, Depends(require_user)]
# A verified user on /api/*, counted per user and tenant; an API key is 403 API_KEY_NOT_ALLOWED.
PrincipalDep = Annotated[Principal, Depends(require_api_user)]
# A verified user, or an API key with the scope, on the /api/* endpoints that accept keys.
ConversationsReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_CONVERSATIONS_READ))]
ConversationsWriterDep = Annotated[Principal, Depends(api_key_access(SCOPE_CONVERSATIONS_WRITE))]
MessagesReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_MESSAGES_READ))]
MessagesSenderDep = Annotated[Principal, Depends(api_key_access(SCOPE_MESSAGES_SEND))]
UsageReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_USAGE_READ))]
