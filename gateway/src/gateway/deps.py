"""Annotated dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from eva_common.auth import Principal
from fastapi import Depends, Request

from gateway.auth import api_key_access, require_api_user, require_user
from gateway.clients import UpstreamClients
from gateway.state import GatewayState, gateway_state

# The API-key scopes (conventions: "Identity and tenancy rules").
SCOPE_CONVERSATIONS_READ = "conversations:read"
SCOPE_CONVERSATIONS_WRITE = "conversations:write"
SCOPE_MESSAGES_READ = "messages:read"
SCOPE_MESSAGES_SEND = "messages:send"
SCOPE_USAGE_READ = "usage:read"
API_KEY_SCOPES = (SCOPE_CONVERSATIONS_READ, SCOPE_CONVERSATIONS_WRITE, SCOPE_MESSAGES_READ, SCOPE_MESSAGES_SEND,
                  SCOPE_USAGE_READ)
# Roles allowed to administer a tenant (its users, settings, keys, audit log); the platform's own role.
ADMIN_ROLES = ("admin", "super_admin")
SUPER_ADMIN = "super_admin"


def _state(request: Request) -> GatewayState:
    return gateway_state(request)


def _clients(request: Request) -> UpstreamClients:
    return gateway_state(request).clients


StateDep = Annotated[GatewayState, Depends(_state)]
ClientsDep = Annotated[UpstreamClients, Depends(_clients)]
# A verified user (not counted: /auth/me, under the per-IP limit of /auth/*).
UserDep = Annotated[Principal, Depends(require_user)]
# A verified user on /api/*, counted per user and tenant; an API key is 403 API_KEY_NOT_ALLOWED.
PrincipalDep = Annotated[Principal, Depends(require_api_user)]
# A verified user, or an API key with the scope, on the /api/* endpoints that accept keys.
ConversationsReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_CONVERSATIONS_READ))]
ConversationsWriterDep = Annotated[Principal, Depends(api_key_access(SCOPE_CONVERSATIONS_WRITE))]
MessagesReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_MESSAGES_READ))]
UsageReaderDep = Annotated[Principal, Depends(api_key_access(SCOPE_USAGE_READ))]
