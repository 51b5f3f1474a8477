"""TenantService over gRPC: proto <-> domain mapping only (callers are verified, and domain errors mapped, by the
shared interceptor). Mutations also pass the caller's IP and user agent (gateway metadata) on, for the audit log."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import current_principal
from eva_common.grpc.metadata import request_meta
from eva_common.grpc.server import Registrar

from tenant_service.api_keys.domain import ApiKeyInput
from tenant_service.api_keys.service import ApiKeyService
from tenant_service.audit_log.service import AuditLogService
from tenant_service.domain import CredentialsInput, HealthReport, TenantChanges
from tenant_service.grpc_messages import (
    api_key_message,
    audit_log_message,
    credentials_message,
    plan_limits_message,
    sending_credentials_message,
    tenant_message,
    usage_message,
)
from tenant_service.service import TenantService
from tenant_service.usage.service import UsageService

SERVICE_NAME = tenant_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name

Context: TypeAlias = grpc.aio.ServicerContext


class TenantServicer(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(
        self, *, service: TenantService, api_keys: ApiKeyService, usage: UsageService, audit_log: AuditLogService
    ) -> None:
        self._service = service
        self._api_keys = api_keys
        self._usage = usage
        self._audit_log = audit_log

    # ------------------------------------------------------------------ tenants

    async def CreateTenant(self, request: tenant_pb2.CreateTenantRequest, context: Context) -> tenant_pb2.Tenant:
        tenant = await self._service.create_tenant(
            principal=current_principal(), name=request.name, timezone=request.timezone, locale=request.locale,
            meta=request_meta(context), platform=request.platform,
        )
        return tenant_message(tenant)

    async def GetTenant(self, request: tenant_pb2.GetTenantRequest, context: Context) -> tenant_pb2.Tenant:
        tenant = await self._service.get_tenant(principal=current_principal(), tenant_id=request.tenant_id)
        return tenant_message(tenant)

    async def GetTenantBySlug(
        self, request: tenant_pb2.GetTenantBySlugRequest, context: Context
    ) -> tenant_pb2.Tenant:
        return tenant_message(await self._service.get_tenant_by_slug(principal=current_principal(), slug=request.slug))

    async def ListTenants(
        self, request: tenant_pb2.ListTenantsRequest, context: Context
    ) -> tenant_pb2.ListTenantsResponse:
        page = await self._service.list_tenants(principal=current_principal(), status=request.status, q=request.q,
                                                limit=request.limit, cursor=request.cursor)
        return tenant_pb2.ListTenantsResponse(items=[tenant_message(item) for item in page.items],
                                              next_cursor=page.next_cursor)

    async def AdminCreateTenant(
        self, request: tenant_pb2.AdminCreateTenantRequest, context: Context
    ) -> tenant_pb2.Tenant:
        tenant = await self._service.admin_create_tenant(
            principal=current_principal(), name=request.name, plan=request.plan, timezone=request.timezone,
            locale=request.locale, meta=request_meta(context),
        )
        return tenant_message(tenant)

    async def SetTenantStatus(
        self, request: tenant_pb2.SetTenantStatusRequest, context: Context
    ) -> tenant_pb2.Tenant:
        tenant = await self._service.set_tenant_status(
            principal=current_principal(), tenant_id=request.tenant_id, status=request.status,
            meta=request_meta(context),
        )
        return tenant_message(tenant)

    async def UpdateTenant(self, request: tenant_pb2.UpdateTenantRequest, context: Context) -> tenant_pb2.Tenant:
        changes = TenantChanges(
            name=request.name if request.HasField("name") else None,
            timezone=request.timezone if request.HasField("timezone") else None,
            locale=request.locale if request.HasField("locale") else None,
            read_receipts=request.read_receipts if request.HasField("read_receipts") else None,
        )
        tenant = await self._service.update_tenant(principal=current_principal(), changes=changes,
                                                   meta=request_meta(context))
        return tenant_message(tenant)

    # ------------------------------------------------------------------ WhatsApp credentials

    async def PutWhatsAppCredentials(
        self, request: tenant_pb2.PutWhatsAppCredentialsRequest, context: Context
    ) -> tenant_pb2.WhatsAppCredentialsView:
        data = CredentialsInput(
            phone_number_id=request.phone_number_id,
            waba_id=request.waba_id,
            display_phone_number=request.display_phone_number,
            access_token=request.access_token,
            app_secret=request.app_secret,
            verify_token=request.verify_token,
            coexistence=request.coexistence if request.HasField("coexistence") else None,
            throughput_mps=request.throughput_mps if request.HasField("throughput_mps") else None,
        )
        view = await self._service.put_whatsapp_credentials(principal=current_principal(), data=data,
                                                            meta=request_meta(context))
        return credentials_message(view)

    async def GetWhatsAppCredentials(
        self, request: tenant_pb2.GetWhatsAppCredentialsRequest, context: Context
    ) -> tenant_pb2.WhatsAppCredentialsView:
        return credentials_message(await self._service.get_whatsapp_credentials(principal=current_principal()))

    async def ResolvePhoneNumber(
        self, request: tenant_pb2.ResolvePhoneNumberRequest, context: Context
    ) -> tenant_pb2.ResolvePhoneNumberResponse:
        found = await self._service.resolve_phone_number(
            principal=current_principal(), phone_number_id=request.phone_number_id
        )
        return tenant_pb2.ResolvePhoneNumberResponse(
            found=found.found, tenant_id=found.tenant_id, tenant_status=found.tenant_status, app_secret=found.app_secret
        )

    async def ResolveWabaId(
        self, request: tenant_pb2.ResolveWabaIdRequest, context: Context
    ) -> tenant_pb2.ResolvePhoneNumberResponse:
        found = await self._service.resolve_waba_id(principal=current_principal(), waba_id=request.waba_id)
        return tenant_pb2.ResolvePhoneNumberResponse(
            found=found.found, tenant_id=found.tenant_id, tenant_status=found.tenant_status, app_secret=found.app_secret
        )

    async def CheckVerifyToken(
        self, request: tenant_pb2.CheckVerifyTokenRequest, context: Context
    ) -> tenant_pb2.CheckVerifyTokenResponse:
        check = await self._service.check_verify_token(principal=current_principal(), verify_token=request.verify_token)
        return tenant_pb2.CheckVerifyTokenResponse(valid=check.valid, tenant_id=check.tenant_id)

    async def GetSendingCredentials(
        self, request: tenant_pb2.GetSendingCredentialsRequest, context: Context
    ) -> tenant_pb2.SendingCredentials:
        sending = await self._service.get_sending_credentials(
            principal=current_principal(), tenant_id=request.tenant_id
        )
        return sending_credentials_message(sending)

    async def ReportWhatsAppHealth(
        self, request: tenant_pb2.ReportWhatsAppHealthRequest, context: Context
    ) -> tenant_pb2.WhatsAppCredentialsView:
        report = HealthReport(tenant_id=request.tenant_id, healthy=request.healthy, code=request.code,
                              detail=request.detail)
        view = await self._service.report_whatsapp_health(principal=current_principal(), report=report,
                                                          meta=request_meta(context))
        return credentials_message(view)

    # ------------------------------------------------------------------ API keys

    async def CreateApiKey(
        self, request: tenant_pb2.CreateApiKeyRequest, context: Context
    ) -> tenant_pb2.CreatedApiKey:
        created = await self._api_keys.create(
            principal=current_principal(),
            data=ApiKeyInput(name=request.name, scopes=tuple(request.scopes), expires_at=request.expires_at),
            meta=request_meta(context),
        )
        return tenant_pb2.CreatedApiKey(api_key=api_key_message(created.api_key), key=created.key)

    async def ListApiKeys(
        self, request: tenant_pb2.ListApiKeysRequest, context: Context
    ) -> tenant_pb2.ListApiKeysResponse:
        keys = await self._api_keys.list_keys(principal=current_principal(), include_revoked=request.include_revoked)
        return tenant_pb2.ListApiKeysResponse(items=[api_key_message(key) for key in keys])

    async def RevokeApiKey(self, request: tenant_pb2.RevokeApiKeyRequest, context: Context) -> tenant_pb2.ApiKey:
        view = await self._api_keys.revoke(principal=current_principal(), key_id=request.api_key_id,
                                           meta=request_meta(context))
        return api_key_message(view)

    async def VerifyApiKey(
        self, request: tenant_pb2.VerifyApiKeyRequest, context: Context
    ) -> tenant_pb2.VerifiedApiKey:
        verified = await self._api_keys.verify(principal=current_principal(), api_key=request.api_key)
        return tenant_pb2.VerifiedApiKey(valid=verified.valid, key_id=verified.key_id, tenant_id=verified.tenant_id,
                                         scopes=list(verified.scopes), tenant_status=verified.tenant_status)

    # ------------------------------------------------------------------ plans and usage

    async def GetPlanLimits(
        self, request: tenant_pb2.GetPlanLimitsRequest, context: Context
    ) -> tenant_pb2.PlanLimits:
        limits = await self._usage.get_plan_limits(principal=current_principal(), tenant_id=request.tenant_id)
        return plan_limits_message(limits)

    async def GetUsage(self, request: tenant_pb2.GetUsageRequest, context: Context) -> tenant_pb2.GetUsageResponse:
        report = await self._usage.get_usage(principal=current_principal(), tenant_id=request.tenant_id,
                                             from_date=request.from_date, to_date=request.to_date)
        return usage_message(report)

    # ------------------------------------------------------------------ audit log

    async def ListAuditLogs(
        self, request: tenant_pb2.ListAuditLogsRequest, context: Context
    ) -> tenant_pb2.ListAuditLogsResponse:
        page = await self._audit_log.list_logs(
            principal=current_principal(), actor_id=request.actor_id, action=request.action,
            target_type=request.target_type, target_id=request.target_id, from_time=request.from_time,
            to_time=request.to_time, limit=request.limit, cursor=request.cursor,
        )
        return tenant_pb2.ListAuditLogsResponse(items=[audit_log_message(item) for item in page.items],
                                                next_cursor=page.next_cursor)


def registrar(servicer: TenantServicer) -> Registrar:
    def register(server: grpc.aio.Server) -> None:
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(servicer, server)

    return register
