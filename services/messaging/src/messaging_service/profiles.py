"""Tenants' sending profiles (WhatsApp number, access token, limits, read-receipt policy) and whether their monthly
quota is used up, cached per replica for a short while: every send needs both, and they change rarely (a new token is
seen within `ttl` seconds, at once on this replica after `forget`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from messaging_service.clients import SendingProfile


class ProfileSource(Protocol):
    async def sending_profile(self, *, tenant_id: str) -> SendingProfile: ...


class Profiles(Protocol):
    """Where the outbound use cases get a tenant's sending profile (SendingProfiles; fixed ones in benchmarks)."""

    async def get(self, tenant_id: str) -> SendingProfile: ...

    def forget(self, tenant_id: str) -> None: ...


T = TypeVar("T")


class _PerTenant(Generic[T]):
    """A value per tenant, loaded again once it is `ttl` seconds old."""

    def __init__(self, *, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[str, tuple[float, T]] = {}

    async def get(self, tenant_id: str, load: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        cached = self._values.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        value = await load()
        self._values[tenant_id] = (now, value)
        return value

    def forget(self, tenant_id: str) -> None:
        self._values.pop(tenant_id, None)


class SendingProfiles:
    def __init__(self, source: ProfileSource, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._cache: _PerTenant[SendingProfile] = _PerTenant(ttl=ttl, clock=clock)

    async def get(self, tenant_id: str) -> SendingProfile:
        return await self._cache.get(tenant_id, lambda: self._source.sending_profile(tenant_id=tenant_id))

    def forget(self, tenant_id: str) -> None:
        self._cache.forget(tenant_id)


class QuotaSource(Protocol):
    async def quota_exceeded(self, *, tenant_id: str) -> bool: ...


class CachedQuotas:
    """Whether a tenant's monthly quota is used up, asked of `source` at most once per `ttl` seconds per tenant: a
    tenant may overshoot its quota by what it sends in that time, and a renewed quota is seen within it."""

    def __init__(self, source: QuotaSource, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._cache: _PerTenant[bool] = _PerTenant(ttl=ttl, clock=clock)

    async def quota_exceeded(self, *, tenant_id: str) -> bool:
        return await self._cache.get(tenant_id, lambda: self._source.quota_exceeded(tenant_id=tenant_id))

    def forget(self, tenant_id: str) -> None:
        self._cache.forget(tenant_id)


def send_rate(profile: SendingProfile, *, default: int, coexistence: int) -> int:
    """Messages per second the profile's number may send: its own limit, else the default for its kind."""
    if profile.throughput_mps > 0:
        return profile.throughput_mps
    return coexistence if profile.coexistence else default
