"""AuthService over gRPC: proto <-> domain mapping only (the shared interceptor verifies callers and maps errors)."""

from __future__ import annotations

import json

import grpc
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2
from eva_common.auth import current_principal
from eva_common.grpc.server import Registrar

from auth_service.domain import AuthSession, TenantInfo, UserView
from auth_service.service import AuthService
from auth_service.tokens import KeyRing

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# Reachable without an access token (GetMe needs one; it is verified against auth's own keys).
PUBLIC_METHODS = frozenset({"Register", "Login", "Refresh", "Logout", "GetJwks", "IssueServiceToken"})


def user_message(user: UserView) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id, tenant_id=user.tenant_id, name=user.name, email=user.email, role=user.role, active=user.active,
        created_at=user.created_at.isoformat(),
    )


def tenant_message(tenant: TenantInfo) -> tenant_pb2.Tenant:
    return tenant_pb2.Tenant(
        id=tenant.id, name=tenant.name, slug=tenant.slug, status=tenant.status, plan=tenant.plan,
        timezone=tenant.timezone, locale=tenant.locale, created_at=tenant.created_at,
    )


def session_message(session: AuthSession) -> auth_pb2.AuthSession:
    return auth_pb2.AuthSession(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        user=user_message(session.user),
        tenant=tenant_message(session.tenant),
        expires_in=session.expires_in,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, *, service: AuthService, keys: KeyRing) -> None:
        self._service = service
        self._keys = keys

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.AuthSession:
        session = await self._service.register(
            tenant_name=request.tenant_name, name=request.name, email=request.email, password=request.password
        )
        return session_message(session)

    async def Login(self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext) -> auth_pb2.AuthSession:
        session = await self._service.login(
            email=request.email, password=request.password, tenant_slug=request.tenant_slug
        )
        return session_message(session)

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.AuthSession:
        return session_message(await self._service.refresh(refresh_token=request.refresh_token))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        await self._service.logout(refresh_token=request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: grpc.aio.ServicerContext) -> auth_pb2.Me:
        me = await self._service.get_me(principal=current_principal())
        return auth_pb2.Me(user=user_message(me.user), tenant=tenant_message(me.tenant))

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(jwks_json=json.dumps(self._keys.jwks()))

    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssueServiceTokenResponse:
        issued = self._service.issue_service_token(
            service_name=request.service_name, client_secret=request.client_secret
        )
        return auth_pb2.IssueServiceTokenResponse(access_token=issued.token, expires_in=issued.expires_in)


def registrar(servicer: AuthServicer) -> Registrar:
    def register(server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    return register
