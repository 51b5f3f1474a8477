from __future__ import annotations

import asyncio

import grpc
import pytest
from eva_common.errors import Unavailable
from eva_common.grpc.client import create_channel
from webhook_ingest_service.tenants import CachedTenantDirectory, GrpcTenantDirectory, TenantRoute

ROUTE = TenantRoute(tenant_id="t-1", tenant_status="active", app_secret="s3cret")


class CountingDirectory:
    def __init__(self) -> None:
        self.routes: dict[str, TenantRoute] = {"pn-1": ROUTE}
        self.wabas: dict[str, TenantRoute] = {"waba-1": ROUTE}
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.failures = 0

    async def resolve_phone_number(self, phone_number_id: str) -> TenantRoute | None:
        self.calls.append(phone_number_id)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise Unavailable("tenant service down")
        return self.routes.get(phone_number_id)

    async def resolve_waba_id(self, waba_id: str) -> TenantRoute | None:
        self.calls.append(f"waba:{waba_id}")
        return self.wabas.get(waba_id)

    async def check_verify_token(self, verify_token: str) -> str | None:
        self.calls.append(f"token:{verify_token}")
        return "t-1" if verify_token == "ok" else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_found_numbers_are_cached_for_the_ttl() -> None:
    inner, clock = CountingDirectory(), Clock()
    cache = CachedTenantDirectory(inner=inner, ttl=30, negative_ttl=5, clock=clock)
    assert await cache.resolve_phone_number("pn-1") == ROUTE
    clock.now += 29
    assert await cache.resolve_phone_number("pn-1") == ROUTE
    assert inner.calls == ["pn-1"]
    clock.now += 2
    assert await cache.resolve_phone_number("pn-1") == ROUTE
    assert inner.calls == ["pn-1", "pn-1"]


async def test_unknown_numbers_are_cached_for_a_shorter_time() -> None:
    inner, clock = CountingDirectory(), Clock()
    cache = CachedTenantDirectory(inner=inner, ttl=30, negative_ttl=5, clock=clock)
    assert await cache.resolve_phone_number("pn-x") is None
    clock.now += 4
    assert await cache.resolve_phone_number("pn-x") is None
    assert inner.calls == ["pn-x"]
    inner.routes["pn-x"] = ROUTE  # the tenant configures the number
    clock.now += 2
    assert await cache.resolve_phone_number("pn-x") == ROUTE
    assert inner.calls == ["pn-x", "pn-x"]


async def test_failures_are_not_cached() -> None:
    inner = CountingDirectory()
    inner.failures = 1
    cache = CachedTenantDirectory(inner=inner)
    with pytest.raises(Unavailable):
        await cache.resolve_phone_number("pn-1")
    assert await cache.resolve_phone_number("pn-1") == ROUTE
    assert inner.calls == ["pn-1", "pn-1"]


async def test_concurrent_lookups_of_one_number_share_one_call() -> None:
    inner = CountingDirectory()
    inner.gate = asyncio.Event()
    cache = CachedTenantDirectory(inner=inner)
    waiters = [asyncio.create_task(cache.resolve_phone_number("pn-1")) for _ in range(5)]
    await asyncio.sleep(0)
    inner.gate.set()
    assert await asyncio.gather(*waiters) == [ROUTE] * 5
    assert inner.calls == ["pn-1"]


async def test_a_cancelled_caller_does_not_cancel_the_shared_lookup() -> None:
    inner = CountingDirectory()
    inner.gate = asyncio.Event()
    cache = CachedTenantDirectory(inner=inner)
    first = asyncio.create_task(cache.resolve_phone_number("pn-1"))
    second = asyncio.create_task(cache.resolve_phone_number("pn-1"))
    await asyncio.sleep(0)
    first.cancel()
    inner.gate.set()
    assert await second == ROUTE
    assert first.cancelled()
    assert await cache.resolve_phone_number("pn-1") == ROUTE
    assert inner.calls == ["pn-1"]


async def test_the_cache_is_bounded() -> None:
    inner = CountingDirectory()
    cache = CachedTenantDirectory(inner=inner, max_entries=2)
    for number in ("a", "b", "c"):
        await cache.resolve_phone_number(number)
    await cache.resolve_phone_number("a")  # evicted as the oldest
    assert inner.calls == ["a", "b", "c", "a"]


async def test_verify_tokens_are_not_cached() -> None:
    inner = CountingDirectory()
    cache = CachedTenantDirectory(inner=inner)
    assert await cache.check_verify_token("ok") == "t-1"
    assert await cache.check_verify_token("ok") == "t-1"
    assert inner.calls == ["token:ok", "token:ok"]


def test_route_repr_hides_the_secret() -> None:
    assert "s3cret" not in repr(ROUTE)


async def test_grpc_directory_turns_an_unreachable_auth_into_unavailable() -> None:
    async def token() -> str:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")

    channel = create_channel("127.0.0.1:9")
    try:
        directory = GrpcTenantDirectory(channel=channel, token=token, timeout=0.5)
        with pytest.raises(Unavailable):
            await directory.resolve_phone_number("pn-1")
        with pytest.raises(Unavailable):
            await directory.check_verify_token("t")
    finally:
        await channel.close()


async def test_waba_lookups_are_cached_apart_from_numbers_with_the_same_key() -> None:
    inner, clock = CountingDirectory(), Clock()
    inner.routes["waba-1"] = TenantRoute(tenant_id="t-other", tenant_status="active", app_secret="")
    cache = CachedTenantDirectory(inner=inner, ttl=30, negative_ttl=5, clock=clock)
    assert await cache.resolve_waba_id("waba-1") == ROUTE
    assert await cache.resolve_waba_id("waba-1") == ROUTE
    assert (await cache.resolve_phone_number("waba-1")).tenant_id == "t-other"  # type: ignore[union-attr]
    assert await cache.resolve_waba_id("waba-unknown") is None
    clock.now += 4
    assert await cache.resolve_waba_id("waba-unknown") is None
    assert inner.calls == ["waba:waba-1", "waba-1", "waba:waba-unknown"]
    clock.now += 27
    assert await cache.resolve_waba_id("waba-1") == ROUTE
    assert inner.calls[-1] == "waba:waba-1"
