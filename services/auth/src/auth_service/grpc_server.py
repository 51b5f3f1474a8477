"""AuthService over gRPC: proto <-> domain mapping only (the shared interceptor verifies callers and maps errors)."""

from __future__ import annotations

import json

import grpc
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.tenant.v1 import tenant_pb2
from eva_common.audit import RequestMeta
from eva_common.auth import current_principal
from eva_common.grpc.metadata import request_meta
from eva_common.grpc.server import Registrar
from eva_common.timefmt import rfc3339

from auth_service.domain import AuthSession, NewUser, TenantInfo, UserChanges, UserQuery, UserView
from auth_service.service import AuthService
from auth_service.tokens import KeyRing
from auth_service.users import UserAdmin

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# Reachable without an access token (the others need one, verified against auth's own keys).
PUBLIC_METHODS = frozenset(
    {"Register", "Login", "Refresh", "Logout", "GetJwks", "IssueServiceToken", "ExchangeApiKey"}
)


def client_info(context: grpc.aio.ServicerContext) -> RequestMeta:
    """The caller as the gateway saw it (metadata it sets), for audit entries and login throttling only."""
    meta = request_meta(context)
    return meta


def user_message(user: UserView) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id, tenant_id=user.tenant_id, name=user.name, email=user.email, role=user.role, active=user.active,
        created_at=rfc3339(user.created_at),
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


def user_changes(request: auth_pb2.UpdateUserRequest) -> UserChanges:
    return UserChanges(
        name=request.name if request.HasField("name") else None,
        email=request.email if request.HasField("email") else None,
        role=request.role if request.HasField("role") else None,
        active=request.active if request.HasField("active") else None,
        password=request.password if request.HasField("password") else None,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, *, service: AuthService, users: UserAdmin, keys: KeyRing) -> None:
        self._service = service
        self._users = users
        self._keys = keys

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.AuthSession:
        session = await self._service.register(
            tenant_name=request.tenant_name, name=request.name, email=request.email, password=request.password,
            client=client_info(context),
        )
        return session_message(session)

    async def Login(self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext) -> auth_pb2.AuthSession:
        session = await self._service.login(
            email=request.email, password=request.password, tenant_slug=request.tenant_slug,
            client=client_info(context),
        )
        return session_message(session)

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.AuthSession:
        session = await self._service.refresh(refresh_token=request.refresh_token, client=client_info(context))
        return session_message(session)

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        await self._service.logout(refresh_token=request.refresh_token, client=client_info(context))
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

    async def ExchangeApiKey(
        self, request: auth_pb2.ExchangeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ExchangeApiKeyResponse:
        session = await self._service.exchange_api_key(api_key=request.api_key)
        return auth_pb2.ExchangeApiKeyResponse(
            access_token=session.access_token, expires_in=session.expires_in, tenant_id=session.tenant_id,
            scopes=list(session.scopes), key_id=session.key_id,
        )

    async def ListUsers(
        self, request: auth_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListUsersResponse:
        page = await self._users.list_users(
            principal=current_principal(),
            query=UserQuery(limit=request.limit, cursor=request.cursor, role=request.role, q=request.q,
                            include_inactive=request.include_inactive, tenant_id=request.tenant_id),
        )
        return auth_pb2.ListUsersResponse(items=[user_message(user) for user in page.items],
                                          next_cursor=page.next_cursor)

    async def CreateUser(self, request: auth_pb2.CreateUserRequest, context: grpc.aio.ServicerContext) -> auth_pb2.User:
        user = await self._users.create_user(
            principal=current_principal(),
            data=NewUser(name=request.name, email=request.email, password=request.password, role=request.role,
                         tenant_id=request.tenant_id),
            client=client_info(context),
        )
        return user_message(user)

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: grpc.aio.ServicerContext) -> auth_pb2.User:
        return user_message(await self._users.get_user(principal=current_principal(), user_id=request.user_id))

    async def UpdateUser(self, request: auth_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext) -> auth_pb2.User:
        user = await self._users.update_user(
            principal=current_principal(), user_id=request.user_id, changes=user_changes(request),
            client=client_info(context),
        )
        return user_message(user)

    async def DeleteUser(
        self, request: auth_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.DeleteUserResponse:
        await self._users.delete_user(principal=current_principal(), user_id=request.user_id,
                                      client=client_info(context))
        return auth_pb2.DeleteUserResponse()


def registrar(servicer: AuthServicer) -> Registrar:
    def register(server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    return register
