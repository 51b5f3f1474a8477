"""Annotated dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from eva_common.auth import Principal
from fastapi import Depends, Request

from gateway.auth import require_user
from gateway.clients import UpstreamClients
from gateway.state import GatewayState, gateway_state


def _state(request: Request) -> GatewayState:
    return gateway_state(request)


def _clients(request: Request) -> UpstreamClients:
    return gateway_state(request).clients


StateDep = Annotated[GatewayState, Depends(_state)]
ClientsDep = Annotated[UpstreamClients, Depends(_clients)]
PrincipalDep = Annotated[Principal, Depends(require_user)]
