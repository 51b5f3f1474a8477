"""TenantService over gRPC: proto <-> domain mapping only (callers are verified by the shared interceptor)."""

from __future__ import annotations

from datetime import datetime

import grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import current_principal
from eva_common.grpc.server import Registrar

from tenant_service.domain import CredentialsInput, CredentialsView, SecretState, TenantView
from tenant_service.service import TenantService

SERVICE_NAME = tenant_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name


def _timestamp(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def tenant_message(tenant: TenantView) -> tenant_pb2.Tenant:
    return tenant_pb2.Tenant(
        id=tenant.id, name=tenant.name, slug=tenant.slug, status=tenant.status, plan=tenant.plan,
        timezone=tenant.timezone, locale=tenant.locale, created_at=_timestamp(tenant.created_at),
    )


def _secret_state(state: SecretState) -> tenant_pb2.SecretState:
    return tenant_pb2.SecretState(set=state.set, last4=state.last4)


def credentials_message(view: CredentialsView) -> tenant_pb2.WhatsAppCredentialsView:
    return tenant_pb2.WhatsAppCredentialsView(
        configured=view.configured,
        phone_number_id=view.phone_number_id,
        waba_id=view.waba_id,
        display_phone_number=view.display_phone_number,
        access_token=_secret_state(view.access_token),
        app_secret=_secret_state(view.app_secret),
        verify_token=_secret_state(view.verify_token),
        updated_at=_timestamp(view.updated_at),
    )


class TenantServicer(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, *, service: TenantService) -> None:
        self._service = service

    async def CreateTenant(
        self, request: tenant_pb2.CreateTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.Tenant:
        tenant = await self._service.create_tenant(
            principal=current_principal(), name=request.name, timezone=request.timezone, locale=request.locale
        )
        return tenant_message(tenant)

    async def GetTenant(
        self, request: tenant_pb2.GetTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.Tenant:
        tenant = await self._service.get_tenant(principal=current_principal(), tenant_id=request.tenant_id)
        return tenant_message(tenant)

    async def GetTenantBySlug(
        self, request: tenant_pb2.GetTenantBySlugRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.Tenant:
        return tenant_message(await self._service.get_tenant_by_slug(principal=current_principal(), slug=request.slug))

    async def PutWhatsAppCredentials(
        self, request: tenant_pb2.PutWhatsAppCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.WhatsAppCredentialsView:
        data = CredentialsInput(
            phone_number_id=request.phone_number_id,
            waba_id=request.waba_id,
            display_phone_number=request.display_phone_number,
            access_token=request.access_token,
            app_secret=request.app_secret,
            verify_token=request.verify_token,
        )
        view = await self._service.put_whatsapp_credentials(principal=current_principal(), data=data)
        return credentials_message(view)

    async def GetWhatsAppCredentials(
        self, request: tenant_pb2.GetWhatsAppCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.WhatsAppCredentialsView:
        return credentials_message(await self._service.get_whatsapp_credentials(principal=current_principal()))

    async def ResolvePhoneNumber(
        self, request: tenant_pb2.ResolvePhoneNumberRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.ResolvePhoneNumberResponse:
        found = await self._service.resolve_phone_number(
            principal=current_principal(), phone_number_id=request.phone_number_id
        )
        return tenant_pb2.ResolvePhoneNumberResponse(
            found=found.found, tenant_id=found.tenant_id, tenant_status=found.tenant_status, app_secret=found.app_secret
        )

    async def CheckVerifyToken(
        self, request: tenant_pb2.CheckVerifyTokenRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.CheckVerifyTokenResponse:
        check = await self._service.check_verify_token(principal=current_principal(), verify_token=request.verify_token)
        return tenant_pb2.CheckVerifyTokenResponse(valid=check.valid, tenant_id=check.tenant_id)

    async def GetSendingCredentials(
        self, request: tenant_pb2.GetSendingCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> tenant_pb2.SendingCredentials:
        sending = await self._service.get_sending_credentials(
            principal=current_principal(), tenant_id=request.tenant_id
        )
        return tenant_pb2.SendingCredentials(
            tenant_id=sending.tenant_id, phone_number_id=sending.phone_number_id, access_token=sending.access_token
        )


def registrar(servicer: TenantServicer) -> Registrar:
    def register(server: grpc.aio.Server) -> None:
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(servicer, server)

    return register
