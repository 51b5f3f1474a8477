"""Sending profiles and quota answers are asked of the tenant service at most once per `ttl` per tenant and replica;
`forget` drops an answer at once (a new access token, a renewed quota)."""

from __future__ import annotations

from messaging_service.clients import SendingProfile
from messaging_service.profiles import CachedQuotas, SendingProfiles


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tenants:
    def __init__(self) -> None:
        self.profile_calls: list[str] = []
        self.quota_calls: list[str] = []
        self.exhausted: set[str] = set()

    async def sending_profile(self, *, tenant_id: str) -> SendingProfile:
        self.profile_calls.append(tenant_id)
        return SendingProfile(tenant_id=tenant_id, phone_number_id=f"pn-{len(self.profile_calls)}",
                              access_token="secret", waba_id="w", display_phone_number="+1", coexistence=False,
                              throughput_mps=0, tenant_status="active", read_receipts="on_read", health="healthy")

    async def quota_exceeded(self, *, tenant_id: str) -> bool:
        self.quota_calls.append(tenant_id)
        return tenant_id in self.exhausted


async def test_a_quota_answer_is_kept_for_its_ttl_per_tenant_then_asked_again() -> None:
    tenants, clock = Tenants(), Clock()
    quotas = CachedQuotas(tenants, ttl=5.0, clock=clock)
    assert not await quotas.quota_exceeded(tenant_id="a")
    tenants.exhausted.add("a")
    clock.now += 4.9
    assert not await quotas.quota_exceeded(tenant_id="a")  # within the ttl: the kept answer
    assert await quotas.quota_exceeded(tenant_id="b") is False
    clock.now += 0.2
    assert await quotas.quota_exceeded(tenant_id="a")  # past it: asked again, now used up
    tenants.exhausted.clear()
    quotas.forget("a")
    assert not await quotas.quota_exceeded(tenant_id="a")  # forgotten: asked at once
    assert tenants.quota_calls == ["a", "b", "a", "a"]


async def test_a_profile_is_kept_for_its_ttl_and_forget_drops_it_at_once() -> None:
    tenants, clock = Tenants(), Clock()
    profiles = SendingProfiles(tenants, ttl=30.0, clock=clock)
    first = await profiles.get("a")
    clock.now += 29
    assert await profiles.get("a") is first
    profiles.forget("a")
    assert (await profiles.get("a")).phone_number_id == "pn-2"
    clock.now += 31
    assert (await profiles.get("a")).phone_number_id == "pn-3"
    assert tenants.profile_calls == ["a", "a", "a"]
