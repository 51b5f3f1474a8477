"""Defence in depth at the edge: whatever an upstream returns, a resource of another tenant is not shown."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, TypeVar

from eva_common.auth import Principal
from eva_common.errors import NotFound

logger = logging.getLogger(__name__)


class TenantOwned(Protocol):
    @property
    def tenant_id(self) -> str: ...


T = TypeVar("T", bound=TenantOwned)


def ensure_visible(principal: Principal, tenant_id: str, *, what: str) -> None:
    """NOT_FOUND unless `tenant_id` (the tenant the upstream says owns the resource) is the caller's."""
    if tenant_id != principal.tenant_id:
        raise NotFound(f"{what} not found", code="NOT_FOUND")


def visible_items(principal: Principal, items: Sequence[T], *, what: str) -> list[T]:
    """The items of a page that are the caller's tenant's; any other is dropped (and logged: an upstream bug)."""
    kept = [item for item in items if item.tenant_id == principal.tenant_id]
    dropped = len(items) - len(kept)
    if dropped:
        logger.error("an upstream listed resources of another tenant; dropped", extra={"what": what,
                                                                                         "dropped": dropped})
    return kept
