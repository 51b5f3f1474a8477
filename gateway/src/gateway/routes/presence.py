"""/api/presence: the caller's tenant's online users, so a client can load the list before `presence:update`
events keep it current. Users only (an API key is 403 API_KEY_NOT_ALLOWED)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import PrincipalDep, StateDep
from gateway.problems import api_problems
from gateway.schemas.presence import PresenceOut

router = APIRouter(prefix="/api/presence", tags=["presence"])


@router.get("", summary="The users of the caller's tenant who are online now", responses=api_problems())
async def get_presence(principal: PrincipalDep, state: StateDep) -> PresenceOut:
    return PresenceOut(online=await state.presence.online(principal.require_tenant()))
