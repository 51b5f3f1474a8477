"""Presence body: which users of the caller's tenant are online."""

from __future__ import annotations

from pydantic import Field

from gateway.schemas.base import CamelModel


class PresenceOut(CamelModel):
    online: list[str] = Field(description="Ids of the tenant's users with at least one live Socket.io connection")
