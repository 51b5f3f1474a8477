"""Which tenant owns a phone number or a WhatsApp Business Account (and which app secret signs its webhooks), and
whose verify token is which.

`TenantDirectory` is the port the ingest use cases depend on; `GrpcTenantDirectory` asks the tenant service with
this service's own service token, and `CachedTenantDirectory` keeps answers in-process for a short while
(negative answers for a shorter while) and coalesces concurrent look-ups of the same number or WABA.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.grpc.client import domain_error_from_rpc, rpc


@dataclass(frozen=True, slots=True)
class TenantRoute:
    """The tenant owning a phone number id; `app_secret` is empty when it uses the platform's Meta app."""

    tenant_id: str
    tenant_status: str
    app_secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"TenantRoute(tenant_id={self.tenant_id!r}, tenant_status={self.tenant_status!r})"


class TenantDirectory(Protocol):
    async def resolve_phone_number(self, phone_number_id: str) -> TenantRoute | None:
        """The owner of a phone number id, or None when no tenant owns it."""
        ...

    async def resolve_waba_id(self, waba_id: str) -> TenantRoute | None:
        """The owner of a WhatsApp Business Account id, or None when no tenant (or more than one) claims it."""
        ...

    async def check_verify_token(self, verify_token: str) -> str | None:
        """The tenant whose webhook verify token this is, or None."""
        ...


TokenSource = Callable[[], Awaitable[str]]


class GrpcTenantDirectory:
    """TenantService over gRPC; failures surface as eva_common DomainErrors (Unavailable, DeadlineExceeded, …)."""

    def __init__(self, *, channel: grpc.aio.Channel, token: TokenSource, timeout: float) -> None:
        self._stub = tenant_pb2_grpc.TenantServiceStub(channel)
        self._token = token
        self._timeout = timeout

    async def _service_token(self) -> str:
        try:
            return await self._token()
        except grpc.aio.AioRpcError as error:  # auth unreachable or refusing: surfaces as a DomainError
            raise domain_error_from_rpc(error) from error

    async def resolve_phone_number(self, phone_number_id: str) -> TenantRoute | None:
        response = await rpc(
            self._stub.ResolvePhoneNumber,
            tenant_pb2.ResolvePhoneNumberRequest(phone_number_id=phone_number_id),
            token=await self._service_token(),
            timeout=self._timeout,
        )
        return _route(response)

    async def resolve_waba_id(self, waba_id: str) -> TenantRoute | None:
        response = await rpc(
            self._stub.ResolveWabaId,
            tenant_pb2.ResolveWabaIdRequest(waba_id=waba_id),
            token=await self._service_token(),
            timeout=self._timeout,
        )
        return _route(response)

    async def check_verify_token(self, verify_token: str) -> str | None:
        response = await rpc(
            self._stub.CheckVerifyToken,
            tenant_pb2.CheckVerifyTokenRequest(verify_token=verify_token),
            token=await self._service_token(),
            timeout=self._timeout,
        )
        return (response.tenant_id or None) if response.valid else None


def _route(response: tenant_pb2.ResolvePhoneNumberResponse) -> TenantRoute | None:
    if not response.found or not response.tenant_id:
        return None
    return TenantRoute(tenant_id=response.tenant_id, tenant_status=response.tenant_status,
                       app_secret=response.app_secret)


Clock = Callable[[], float]
_PHONE = "pn"
_WABA = "waba"


class CachedTenantDirectory:
    """Caches phone-number and WABA look-ups (found: `ttl`, not found: `negative_ttl`), bounded to `max_entries`
    (both kinds share the bound; each is keyed by its kind, so a number and a WABA with the same digits never mix).

    Verify-token checks are not cached: they happen only when a callback URL is (re)configured.
    """

    def __init__(
        self,
        *,
        inner: TenantDirectory,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, TenantRoute | None]] = OrderedDict()
        self._in_flight: dict[tuple[str, str], asyncio.Future[TenantRoute | None]] = {}

    async def resolve_phone_number(self, phone_number_id: str) -> TenantRoute | None:
        return await self._lookup((_PHONE, phone_number_id), lambda: self._inner.resolve_phone_number(phone_number_id))

    async def resolve_waba_id(self, waba_id: str) -> TenantRoute | None:
        return await self._lookup((_WABA, waba_id), lambda: self._inner.resolve_waba_id(waba_id))

    async def _lookup(
        self, key: tuple[str, str], load: Callable[[], Awaitable[TenantRoute | None]]
    ) -> TenantRoute | None:
        cached = self._entries.get(key)
        if cached is not None:
            expires_at, route = cached
            if self._clock() < expires_at:
                self._entries.move_to_end(key)
                return route
            del self._entries[key]
        lookup = self._in_flight.get(key)
        if lookup is None:
            # The look-up runs as its own task: a caller that goes away (client disconnect) neither cancels it
            # for the callers sharing it nor loses its answer for the cache.
            lookup = asyncio.ensure_future(load())
            self._in_flight[key] = lookup
            lookup.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(lookup)

    def _settle(self, key: tuple[str, str], lookup: asyncio.Future[TenantRoute | None]) -> None:
        self._in_flight.pop(key, None)
        if lookup.cancelled() or lookup.exception() is not None:
            return
        self._remember(key, lookup.result())

    def _remember(self, key: tuple[str, str], route: TenantRoute | None) -> None:
        ttl = self._ttl if route is not None else self._negative_ttl
        if ttl <= 0:
            return
        self._entries[key] = (self._clock() + ttl, route)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def check_verify_token(self, verify_token: str) -> str | None:
        return await self._inner.check_verify_token(verify_token)
