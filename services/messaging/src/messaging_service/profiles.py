"""Tenants' sending profiles (WhatsApp number, access token, limits, read-receipt policy), cached per replica for a
short while: every send needs one, and they change rarely (a new token is seen within `ttl` seconds, at once on this
replica after `forget`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from messaging_service.clients import SendingProfile


class ProfileSource(Protocol):
    async def sending_profile(self, *, tenant_id: str) -> SendingProfile: ...


class Profiles(Protocol):
    """Where the outbound use cases get a tenant's sending profile (SendingProfiles; fixed ones in benchmarks)."""

    async def get(self, tenant_id: str) -> SendingProfile: ...

    def forget(self, tenant_id: str) -> None: ...


class SendingProfiles:
    def __init__(self, source: ProfileSource, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, SendingProfile]] = {}

    async def get(self, tenant_id: str) -> SendingProfile:
        now = self._clock()
        cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        profile = await self._source.sending_profile(tenant_id=tenant_id)
        self._cache[tenant_id] = (now, profile)
        return profile

    def forget(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)


def send_rate(profile: SendingProfile, *, default: int, coexistence: int) -> int:
    """Messages per second the profile's number may send: its own limit, else the default for its kind."""
    if profile.throughput_mps > 0:
        return profile.throughput_mps
    return coexistence if profile.coexistence else default
