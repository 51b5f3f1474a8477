"""The tenant service as auth sees it: a port (TenantDirectory) and its gRPC adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.errors import NotFound
from eva_common.grpc.client import rpc

from auth_service.domain import PlanLimits, TenantInfo, VerifiedApiKey


class TenantDirectory(Protocol):
    async def create_tenant(self, *, name: str, platform: bool = False) -> TenantInfo:
        """`platform`: the platform's own tenant (reserved slug `platform`; seeding only)."""
        ...

    async def get_tenant(self, *, tenant_id: str, token: str | None = None) -> TenantInfo:
        """With `token` the call acts as that caller (GetMe forwards the user's token); else as auth itself."""
        ...

    async def find_by_slug(self, *, slug: str) -> TenantInfo | None: ...

    async def get_plan_limits(self, *, tenant_id: str) -> PlanLimits:
        """The tenant's plan (seats), asked with auth's own service token."""
        ...

    async def verify_api_key(self, *, api_key: str) -> VerifiedApiKey:
        """Finds the key by its digest (tenant side), asked with auth's own service token."""
        ...


def tenant_info(message: tenant_pb2.Tenant) -> TenantInfo:
    return TenantInfo(
        id=message.id, name=message.name, slug=message.slug, status=message.status, plan=message.plan,
        timezone=message.timezone, locale=message.locale, created_at=message.created_at,
    )


class GrpcTenantDirectory:
    def __init__(self, *, channel: grpc.aio.Channel, service_token: Callable[[], str], timeout: float) -> None:
        self._stub = tenant_pb2_grpc.TenantServiceStub(channel)
        self._service_token = service_token
        self._timeout = timeout

    async def create_tenant(self, *, name: str, platform: bool = False) -> TenantInfo:
        message = await rpc(
            self._stub.CreateTenant, tenant_pb2.CreateTenantRequest(name=name, platform=platform),
            token=self._service_token(), timeout=self._timeout,
        )
        return tenant_info(message)

    async def get_tenant(self, *, tenant_id: str, token: str | None = None) -> TenantInfo:
        message = await rpc(
            self._stub.GetTenant, tenant_pb2.GetTenantRequest(tenant_id=tenant_id),
            token=token or self._service_token(), timeout=self._timeout,
        )
        return tenant_info(message)

    async def find_by_slug(self, *, slug: str) -> TenantInfo | None:
        try:
            message = await rpc(
                self._stub.GetTenantBySlug, tenant_pb2.GetTenantBySlugRequest(slug=slug),
                token=self._service_token(), timeout=self._timeout,
            )
        except NotFound:
            return None
        return tenant_info(message)

    async def get_plan_limits(self, *, tenant_id: str) -> PlanLimits:
        message = await rpc(
            self._stub.GetPlanLimits, tenant_pb2.GetPlanLimitsRequest(tenant_id=tenant_id),
            token=self._service_token(), timeout=self._timeout,
        )
        return PlanLimits(tenant_id=message.tenant_id or tenant_id, plan=message.plan, seats=message.seats)

    async def verify_api_key(self, *, api_key: str) -> VerifiedApiKey:
        message = await rpc(
            self._stub.VerifyApiKey, tenant_pb2.VerifyApiKeyRequest(api_key=api_key),
            token=self._service_token(), timeout=self._timeout,
        )
        return VerifiedApiKey(
            valid=message.valid, key_id=message.key_id, tenant_id=message.tenant_id, scopes=tuple(message.scopes),
            tenant_status=message.tenant_status,
        )
