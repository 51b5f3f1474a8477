"""Integration fixtures: fake upstream services on a REAL grpc.aio server (the shared GrpcServer, with its
interceptor verifying forwarded tokens and mapping domain errors), real Redis, and the real gateway app served by
uvicorn on a free port."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
from eva.auth.v1 import auth_pb2, auth_pb2_grpc
from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva.n8n.v1 import webhooks_pb2, webhooks_pb2_grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import RedisRevocations, TokenVerifier, current_principal, grpc_jwks_source
from eva_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from eva_common.grpc.server import GrpcServer
from eva_common.ratelimit import RateLimiter
from eva_common.realtime.rooms import tenant_room
from eva_common.realtime.sequence import RedisSequencer
from eva_common.redis import create_redis
from eva_common.runtime import HttpServer
from eva_testing.infra import TestInfra, free_port, test_infra
from eva_testing.tokens import TestTokenIssuer
from gateway.app import GatewayApp, create_gateway_app
from gateway.clients import UPSTREAM_SERVICES, UpstreamClients
from gateway.settings import Settings
from redis.asyncio import Redis

NOW = "2026-11-29T10:00:00Z"
PUBLIC_AUTH_METHODS = frozenset({"Register", "Login", "Refresh", "Logout", "GetJwks", "IssueServiceToken",
                                 "ExchangeApiKey"})
TENANTLESS = "tenant-without-settings"  # the fake tenant service answers TENANT_REQUIRED for this tenant
THROTTLED_EMAIL = "throttled@hotel.example"  # the fake auth service answers LOGIN_THROTTLED (retry after 37 s)
THROTTLE_SECONDS = 37
ROLE_RANK = {"attendant": 0, "admin": 1, "super_admin": 2}


# ---------------------------------------------------------------- fake upstream services


@dataclass
class Directory:
    """The fake services' shared data."""

    issuer: TestTokenIssuer
    users: dict[str, auth_pb2.User] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    tenants: dict[str, tenant_pb2.Tenant] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # live refresh token -> user id
    spent_refresh_tokens: set[str] = field(default_factory=set)
    credentials: dict[str, tenant_pb2.PutWhatsAppCredentialsRequest] = field(default_factory=dict)
    conversations: dict[str, conversation_pb2.Conversation] = field(default_factory=dict)
    messages: dict[str, list[messaging_pb2.Message]] = field(default_factory=dict)
    forwarded_tokens: list[tuple[str, str | None]] = field(default_factory=list)
    forwarded_metadata: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    api_keys: dict[str, tenant_pb2.ApiKey] = field(default_factory=dict)
    api_key_secrets: dict[str, str] = field(default_factory=dict)  # the key -> its id
    exchanges: list[str] = field(default_factory=list)  # key ids exchanged by ExchangeApiKey
    exchange_ttl: int = 300
    audit_logs: dict[str, list[tenant_pb2.AuditLog]] = field(default_factory=dict)
    tags: dict[str, dict[str, conversation_pb2.Tag]] = field(default_factory=dict)  # tenant id -> tag id -> tag
    conversation_tags: dict[str, set[str]] = field(default_factory=dict)
    escalations: dict[str, conversation_pb2.Escalation] = field(default_factory=dict)
    contacts: dict[str, conversation_pb2.Contact] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)  # message id -> the stored media's bytes
    media_chunk_size: int = 4
    upstream_requests: list[tuple[str, Any]] = field(default_factory=list)
    webhooks: dict[str, webhooks_pb2.Subscription] = field(default_factory=dict)
    webhook_deliveries: dict[str, webhooks_pb2.Delivery] = field(default_factory=dict)

    def requests_of(self, method: str) -> list[Any]:
        return [request for name, request in self.upstream_requests if name == method]

    def message(self, message_id: str) -> messaging_pb2.Message | None:
        return next((message for messages in self.messages.values() for message in messages
                     if message.id == message_id), None)

    def metadata_of(self, method: str) -> list[dict[str, str]]:
        return [metadata for name, metadata in self.forwarded_metadata if name == method]

    def add_api_key(self, *, tenant_id: str, scopes: list[str], name: str = "n8n") -> tuple[tenant_pb2.ApiKey, str]:
        key_id = f"k-{uuid.uuid4().hex[:10]}"
        prefix = uuid.uuid4().hex[:8]
        secret = f"eva_{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        key = tenant_pb2.ApiKey(id=key_id, tenant_id=tenant_id, name=name, prefix=f"eva_{prefix}", scopes=scopes,
                                created_at=NOW)
        self.api_keys[key_id] = key
        self.api_key_secrets[secret] = key_id
        return key, secret

    def session(self, user: auth_pb2.User) -> auth_pb2.AuthSession:
        refresh = uuid.uuid4().hex + uuid.uuid4().hex
        self.refresh_tokens[refresh] = user.id
        return auth_pb2.AuthSession(
            access_token=self.issuer.user_token(user_id=user.id, tenant_id=user.tenant_id, role=user.role),
            refresh_token=refresh, expires_in=900, user=user, tenant=self.tenants[user.tenant_id],
        )

    def add_tenant(self, name: str) -> tenant_pb2.Tenant:
        tenant = tenant_pb2.Tenant(id=f"t-{uuid.uuid4().hex[:10]}", name=name, slug=name.lower().replace(" ", "-"),
                                   status="active", plan="trial", timezone="Europe/Lisbon", locale="pt-PT",
                                   created_at=NOW)
        self.tenants[tenant.id] = tenant
        return tenant

    def add_user(self, *, tenant_id: str, email: str, password: str, role: str = "admin") -> auth_pb2.User:
        user = auth_pb2.User(id=f"u-{uuid.uuid4().hex[:10]}", tenant_id=tenant_id, name=email.split("@")[0],
                             email=email, role=role, active=True, created_at=NOW)
        self.users[user.id] = user
        self.passwords[email] = password
        return user


def _record_token(directory: Directory, context: Any, method: str) -> None:
    metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
    directory.forwarded_tokens.append((method, metadata.get("authorization")))
    directory.forwarded_metadata.append((method, metadata))


def _caller_tenant(directory: Directory, context: Any, method: str) -> str:
    _record_token(directory, context, method)
    return current_principal().require_tenant()


def _require_admin() -> None:
    current_principal().require_role("admin", "super_admin")


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    async def Register(self, request: auth_pb2.RegisterRequest, context: Any) -> auth_pb2.AuthSession:
        if request.email in self.d.passwords:
            raise AlreadyExists("this email is already registered", code="EMAIL_TAKEN")
        tenant = self.d.add_tenant(request.tenant_name)
        user = self.d.add_user(tenant_id=tenant.id, email=request.email, password=request.password)
        return self.d.session(user)

    async def Login(self, request: auth_pb2.LoginRequest, context: Any) -> auth_pb2.AuthSession:
        _record_token(self.d, context, "Login")
        if request.email == THROTTLED_EMAIL:
            raise ResourceExhausted("too many login attempts", code="LOGIN_THROTTLED", retry_after=THROTTLE_SECONDS)
        user = next((u for u in self.d.users.values() if u.email == request.email), None)
        if user is None or self.d.passwords.get(request.email) != request.password:
            raise Unauthenticated("invalid email or password", code="INVALID_CREDENTIALS")
        return self.d.session(user)

    async def Refresh(self, request: auth_pb2.RefreshRequest, context: Any) -> auth_pb2.AuthSession:
        if request.refresh_token in self.d.spent_refresh_tokens:
            raise Unauthenticated("refresh token reused; the session is revoked", code="REFRESH_TOKEN_REUSED")
        user_id = self.d.refresh_tokens.pop(request.refresh_token, None)
        if user_id is None:
            raise Unauthenticated("unknown refresh token", code="REFRESH_TOKEN_INVALID")
        self.d.spent_refresh_tokens.add(request.refresh_token)
        return self.d.session(self.d.users[user_id])

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Any) -> auth_pb2.LogoutResponse:
        self.d.refresh_tokens.pop(request.refresh_token, None)
        return auth_pb2.LogoutResponse()

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Any) -> auth_pb2.Me:
        _record_token(self.d, context, "GetMe")
        principal = current_principal()
        user = self.d.users.get(principal.subject)
        if user is None:
            raise NotFound("user not found", code="USER_NOT_FOUND")
        return auth_pb2.Me(user=user, tenant=self.d.tenants[user.tenant_id])

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Any) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(jwks_json=json.dumps(self.d.issuer.jwks()))

    async def IssueServiceToken(self, request: Any, context: Any) -> auth_pb2.IssueServiceTokenResponse:
        raise PermissionDenied("not in this fake")

    async def ExchangeApiKey(self, request: auth_pb2.ExchangeApiKeyRequest, context: Any) -> Any:
        _record_token(self.d, context, "ExchangeApiKey")
        key_id = self.d.api_key_secrets.get(request.api_key)
        key = self.d.api_keys.get(key_id or "")
        if key is None or key.revoked_at:
            raise Unauthenticated("unknown or revoked API key", code="API_KEY_INVALID")
        self.d.exchanges.append(key.id)
        token = self.d.issuer.api_key_token(key_id=key.id, tenant_id=key.tenant_id, scopes=list(key.scopes),
                                            ttl=max(self.d.exchange_ttl, 1))
        return auth_pb2.ExchangeApiKeyResponse(access_token=token, expires_in=self.d.exchange_ttl,
                                               tenant_id=key.tenant_id, scopes=key.scopes, key_id=key.id)

    def _user_in_scope(self, user_id: str) -> auth_pb2.User:
        principal = current_principal()
        user = self.d.users.get(user_id)
        if user is None or (principal.role != "super_admin" and user.tenant_id != principal.tenant_id):
            raise NotFound("user not found", code="USER_NOT_FOUND")
        return user

    async def ListUsers(self, request: auth_pb2.ListUsersRequest, context: Any) -> auth_pb2.ListUsersResponse:
        tenant_id = request.tenant_id or _caller_tenant(self.d, context, "ListUsers")
        users = sorted((u for u in self.d.users.values() if u.tenant_id == tenant_id
                        and (request.include_inactive or u.active) and (not request.role or u.role == request.role)
                        and (not request.q or request.q in u.name or request.q in u.email)), key=lambda u: u.id)
        start = int(request.cursor or 0)
        page = users[start:start + (request.limit or 50)]
        more = start + len(page) < len(users)
        return auth_pb2.ListUsersResponse(items=page, next_cursor=str(start + len(page)) if more else "")

    async def CreateUser(self, request: auth_pb2.CreateUserRequest, context: Any) -> auth_pb2.User:
        tenant_id = request.tenant_id or _caller_tenant(self.d, context, "CreateUser")
        _require_admin()
        if ROLE_RANK[request.role] > ROLE_RANK[current_principal().role]:
            raise PermissionDenied("nobody grants a role above their own", code="ROLE_TOO_HIGH")
        if request.email in self.d.passwords:
            raise AlreadyExists("this email is already used", code="EMAIL_TAKEN")
        user = self.d.add_user(tenant_id=tenant_id, email=request.email, password=request.password, role=request.role)
        user.name = request.name
        return user

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: Any) -> auth_pb2.User:
        _record_token(self.d, context, "GetUser")
        return self._user_in_scope(request.user_id)

    async def UpdateUser(self, request: auth_pb2.UpdateUserRequest, context: Any) -> auth_pb2.User:
        _record_token(self.d, context, "UpdateUser")
        _require_admin()
        user = self._user_in_scope(request.user_id)
        for name in ("name", "email", "role", "active"):
            if request.HasField(name):
                setattr(user, name, getattr(request, name))
        return user

    async def DeleteUser(self, request: auth_pb2.DeleteUserRequest, context: Any) -> auth_pb2.DeleteUserResponse:
        _record_token(self.d, context, "DeleteUser")
        _require_admin()
        user = self._user_in_scope(request.user_id)
        admins = [u for u in self.d.users.values() if u.tenant_id == user.tenant_id and u.role == "admin"]
        if admins == [user]:
            raise FailedPrecondition("the last admin cannot be removed", code="LAST_ADMIN")
        del self.d.users[user.id]
        return auth_pb2.DeleteUserResponse()


def _secret_state(value: str) -> tenant_pb2.SecretState:
    return tenant_pb2.SecretState(set=bool(value), last4=value[-4:] if value else "")


class FakeTenant(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def _view(self, tenant_id: str) -> tenant_pb2.WhatsAppCredentialsView:
        stored = self.d.credentials.get(tenant_id)
        if stored is None:
            return tenant_pb2.WhatsAppCredentialsView(configured=False)
        return tenant_pb2.WhatsAppCredentialsView(
            configured=True, phone_number_id=stored.phone_number_id, waba_id=stored.waba_id,
            display_phone_number=stored.display_phone_number, access_token=_secret_state(stored.access_token),
            app_secret=_secret_state(stored.app_secret), verify_token=_secret_state(stored.verify_token),
            updated_at=NOW,
        )

    def _tenant(self) -> str:
        tenant_id = current_principal().require_tenant()
        if tenant_id == TENANTLESS:
            raise PermissionDenied("this call needs a tenant", code="TENANT_REQUIRED")
        return tenant_id

    async def PutWhatsAppCredentials(self, request: Any, context: Any) -> tenant_pb2.WhatsAppCredentialsView:
        _record_token(self.d, context, "PutWhatsAppCredentials")
        current_principal().require_role("admin")
        tenant_id = self._tenant()
        self.d.credentials[tenant_id] = request
        return self._view(tenant_id)

    async def GetWhatsAppCredentials(self, request: Any, context: Any) -> tenant_pb2.WhatsAppCredentialsView:
        return self._view(self._tenant())

    async def GetTenant(self, request: tenant_pb2.GetTenantRequest, context: Any) -> tenant_pb2.Tenant:
        return self.d.tenants[_caller_tenant(self.d, context, "GetTenant")]

    async def UpdateTenant(self, request: tenant_pb2.UpdateTenantRequest, context: Any) -> tenant_pb2.Tenant:
        tenant = self.d.tenants[_caller_tenant(self.d, context, "UpdateTenant")]
        _require_admin()
        for name in ("name", "timezone", "locale"):
            if request.HasField(name):
                setattr(tenant, name, getattr(request, name))
        return tenant

    def _super_admin(self, context: Any, method: str) -> None:
        _record_token(self.d, context, method)
        current_principal().require_role("super_admin")

    async def ListTenants(self, request: tenant_pb2.ListTenantsRequest, context: Any) -> Any:
        self._super_admin(context, "ListTenants")
        tenants = [t for t in self.d.tenants.values() if (not request.status or t.status == request.status)
                   and (not request.q or request.q.lower() in t.name.lower())]
        return tenant_pb2.ListTenantsResponse(items=tenants[:request.limit or 50])

    async def AdminCreateTenant(self, request: tenant_pb2.AdminCreateTenantRequest, context: Any) -> Any:
        self._super_admin(context, "AdminCreateTenant")
        tenant = self.d.add_tenant(request.name)
        tenant.plan = request.plan or "trial"
        tenant.timezone = request.timezone or "UTC"
        tenant.locale = request.locale or "en"
        return tenant

    async def SetTenantStatus(self, request: tenant_pb2.SetTenantStatusRequest, context: Any) -> tenant_pb2.Tenant:
        self._super_admin(context, "SetTenantStatus")
        tenant = self.d.tenants.get(request.tenant_id)
        if tenant is None:
            raise NotFound("tenant not found", code="TENANT_NOT_FOUND")
        tenant.status = request.status
        return tenant

    async def CreateApiKey(self, request: tenant_pb2.CreateApiKeyRequest, context: Any) -> tenant_pb2.CreatedApiKey:
        tenant_id = _caller_tenant(self.d, context, "CreateApiKey")
        _require_admin()
        key, secret = self.d.add_api_key(tenant_id=tenant_id, scopes=list(request.scopes), name=request.name)
        key.expires_at = request.expires_at
        return tenant_pb2.CreatedApiKey(api_key=key, key=secret)

    async def ListApiKeys(self, request: tenant_pb2.ListApiKeysRequest, context: Any) -> Any:
        tenant_id = _caller_tenant(self.d, context, "ListApiKeys")
        _require_admin()
        return tenant_pb2.ListApiKeysResponse(items=[
            key for key in self.d.api_keys.values()
            if key.tenant_id == tenant_id and (request.include_revoked or not key.revoked_at)])

    async def RevokeApiKey(self, request: tenant_pb2.RevokeApiKeyRequest, context: Any) -> tenant_pb2.ApiKey:
        tenant_id = _caller_tenant(self.d, context, "RevokeApiKey")
        _require_admin()
        key = self.d.api_keys.get(request.api_key_id)
        if key is None or key.tenant_id != tenant_id:
            raise NotFound("API key not found", code="API_KEY_NOT_FOUND")
        key.revoked_at = NOW
        return key

    async def GetUsage(self, request: tenant_pb2.GetUsageRequest, context: Any) -> tenant_pb2.GetUsageResponse:
        tenant_id = _caller_tenant(self.d, context, "GetUsage")
        current_principal().require_scope("usage:read")
        day = request.from_date or "2026-11-01"
        return tenant_pb2.GetUsageResponse(
            days=[tenant_pb2.UsageDay(date=day, category="service", direction="inbound", count=12),
                  tenant_pb2.UsageDay(date=day, category="marketing", direction="outbound", count=3)],
            totals_by_category={"service": 12, "marketing": 3},
            limits=tenant_pb2.PlanLimits(tenant_id=tenant_id, plan=self.d.tenants[tenant_id].plan,
                                         monthly_message_quota=1000, seats=5, messages_used_this_month=15,
                                         period_start="2026-11-01", period_end="2026-11-30"),
        )

    async def ListAuditLogs(self, request: tenant_pb2.ListAuditLogsRequest, context: Any) -> Any:
        tenant_id = _caller_tenant(self.d, context, "ListAuditLogs")
        _require_admin()
        entries = [entry for entry in self.d.audit_logs.get(tenant_id, [])
                   if (not request.action or entry.action == request.action)
                   and (not request.actor_id or entry.actor_id == request.actor_id)]
        return tenant_pb2.ListAuditLogsResponse(items=entries[:request.limit or 50])


def _page(rows: list[Any], request: Any) -> tuple[list[Any], str]:
    """Offset pagination: the cursor is the offset of the next page."""
    start = int(request.cursor or 0)
    page = rows[start:start + (request.limit or 50)]
    return page, str(start + len(page)) if start + len(page) < len(rows) else ""


class FakeConversation(conversation_pb2_grpc.ConversationServiceServicer):
    """Scopes by the caller's tenant, except ids starting with `leaky-` (a buggy upstream that answers another
    tenant's resources), and the inbox search `q=leak` (which lists every tenant's conversations). Keys need
    `conversations:read` for reads and `conversations:write` for changes, as the real service requires."""

    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def _enter(self, context: Any, method: str, request: Any, *, scope: str) -> str:
        _record_token(self.d, context, method)
        self.d.upstream_requests.append((method, request))
        principal = current_principal()
        principal.require_scope(scope)
        return principal.require_tenant()

    def _conversation(self, tenant_id: str, conversation_id: str) -> conversation_pb2.Conversation:
        conversation = self.d.conversations.get(conversation_id)
        if conversation is None or (conversation.tenant_id != tenant_id and not conversation.id.startswith("leaky-")):
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        return conversation

    def _tag(self, tenant_id: str, tag_id: str) -> conversation_pb2.Tag:
        tag = self.d.tags.get(tenant_id, {}).get(tag_id)
        if tag is None:
            raise NotFound("tag not found", code="TAG_NOT_FOUND")
        return tag

    def _escalation(self, tenant_id: str, escalation_id: str) -> conversation_pb2.Escalation:
        escalation = self.d.escalations.get(escalation_id)
        if escalation is None or (escalation.tenant_id != tenant_id and not escalation_id.startswith("leaky-")):
            raise NotFound("escalation not found", code="ESCALATION_NOT_FOUND")
        return escalation

    def _contact(self, tenant_id: str, contact_id: str) -> conversation_pb2.Contact:
        contact = self.d.contacts.get(contact_id)
        if contact is None or (contact.tenant_id != tenant_id and not contact_id.startswith("leaky-")):
            raise NotFound("contact not found", code="CONTACT_NOT_FOUND")
        return contact

    async def GetConversation(self, request: Any, context: Any) -> conversation_pb2.Conversation:
        _record_token(self.d, context, "GetConversation")
        tenant_id = current_principal().tenant_scope(request.tenant_id)
        return self._conversation(tenant_id, request.conversation_id)

    async def ListConversations(self, request: Any, context: Any) -> conversation_pb2.ListConversationsResponse:
        tenant_id = self._enter(context, "ListConversations", request, scope="conversations:read")
        rows = sorted((c for c in self.d.conversations.values()
                       if (c.tenant_id == tenant_id or request.q == "leak")
                       and (not request.status or c.status == request.status)
                       and (not request.assigned_to or c.assigned_to == request.assigned_to)
                       and (not request.unassigned or not c.assigned_to)
                       and (not request.tag or request.tag in self.d.conversation_tags.get(c.id, set()))),
                      key=lambda c: c.id)
        page, next_cursor = _page(rows, request)
        return conversation_pb2.ListConversationsResponse(items=page, next_cursor=next_cursor)

    async def UpdateConversation(self, request: Any, context: Any) -> conversation_pb2.Conversation:
        tenant_id = self._enter(context, "UpdateConversation", request, scope="conversations:write")
        conversation = self._conversation(tenant_id, request.conversation_id)
        if request.HasField("status"):
            conversation.status = request.status
        if request.HasField("priority"):
            conversation.priority = request.priority
        return conversation

    async def AssignConversation(self, request: Any, context: Any) -> conversation_pb2.Conversation:
        tenant_id = self._enter(context, "AssignConversation", request, scope="conversations:write")
        conversation = self._conversation(tenant_id, request.conversation_id)
        if request.attendant_id:
            user = self.d.users.get(request.attendant_id)
            if user is None or user.tenant_id != tenant_id or not user.active:
                raise FailedPrecondition("the attendant is not an active user of this tenant",
                                         code="ATTENDANT_NOT_ASSIGNABLE")
        conversation.assigned_to = request.attendant_id
        return conversation

    async def ListTags(self, request: Any, context: Any) -> conversation_pb2.ListTagsResponse:
        tenant_id = self._enter(context, "ListTags", request, scope="conversations:read")
        return conversation_pb2.ListTagsResponse(items=sorted(self.d.tags.get(tenant_id, {}).values(),
                                                              key=lambda t: t.name))

    async def CreateTag(self, request: Any, context: Any) -> conversation_pb2.Tag:
        tenant_id = self._enter(context, "CreateTag", request, scope="conversations:write")
        tags = self.d.tags.setdefault(tenant_id, {})
        if any(tag.name == request.name for tag in tags.values()):
            raise AlreadyExists("a tag with this name exists", code="TAG_EXISTS")
        tag = conversation_pb2.Tag(id=f"tag-{uuid.uuid4().hex[:8]}", name=request.name, color=request.color,
                                   created_at=NOW)
        tags[tag.id] = tag
        return tag

    async def UpdateTag(self, request: Any, context: Any) -> conversation_pb2.Tag:
        tenant_id = self._enter(context, "UpdateTag", request, scope="conversations:write")
        tag = self._tag(tenant_id, request.tag_id)
        for name in ("name", "color"):
            if request.HasField(name):
                setattr(tag, name, getattr(request, name))
        return tag

    async def DeleteTag(self, request: Any, context: Any) -> conversation_pb2.DeleteTagResponse:
        tenant_id = self._enter(context, "DeleteTag", request, scope="conversations:write")
        self._tag(tenant_id, request.tag_id)
        del self.d.tags[tenant_id][request.tag_id]
        for attached in self.d.conversation_tags.values():
            attached.discard(request.tag_id)
        return conversation_pb2.DeleteTagResponse()

    async def AttachTag(self, request: Any, context: Any) -> conversation_pb2.Conversation:
        tenant_id = self._enter(context, "AttachTag", request, scope="conversations:write")
        conversation = self._conversation(tenant_id, request.conversation_id)
        self._tag(tenant_id, request.tag_id)
        attached = self.d.conversation_tags.setdefault(conversation.id, set())
        if request.tag_id not in attached:
            attached.add(request.tag_id)
            conversation.tags.append(self._tag(tenant_id, request.tag_id))
        return conversation

    async def DetachTag(self, request: Any, context: Any) -> conversation_pb2.Conversation:
        tenant_id = self._enter(context, "DetachTag", request, scope="conversations:write")
        conversation = self._conversation(tenant_id, request.conversation_id)
        self.d.conversation_tags.setdefault(conversation.id, set()).discard(request.tag_id)
        kept = [tag for tag in conversation.tags if tag.id != request.tag_id]
        del conversation.tags[:]
        conversation.tags.extend(kept)
        return conversation

    async def RaiseEscalation(self, request: Any, context: Any) -> conversation_pb2.Escalation:
        tenant_id = self._enter(context, "RaiseEscalation", request, scope="conversations:write")
        self._conversation(tenant_id, request.conversation_id)
        escalation = conversation_pb2.Escalation(
            id=f"esc-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id, conversation_id=request.conversation_id,
            reason=request.reason, priority=request.priority, status="open", raised_by=current_principal().subject,
            created_at=NOW)
        self.d.escalations[escalation.id] = escalation
        return escalation

    async def ListEscalations(self, request: Any, context: Any) -> conversation_pb2.ListEscalationsResponse:
        tenant_id = self._enter(context, "ListEscalations", request, scope="conversations:read")
        rows = sorted((e for e in self.d.escalations.values() if e.tenant_id == tenant_id
                       and (not request.status or e.status == request.status)
                       and (not request.conversation_id or e.conversation_id == request.conversation_id)),
                      key=lambda e: e.id)
        page, next_cursor = _page(rows, request)
        return conversation_pb2.ListEscalationsResponse(items=page, next_cursor=next_cursor)

    async def AcknowledgeEscalation(self, request: Any, context: Any) -> conversation_pb2.Escalation:
        tenant_id = self._enter(context, "AcknowledgeEscalation", request, scope="conversations:write")
        escalation = self._escalation(tenant_id, request.escalation_id)
        if escalation.status != "open":
            raise FailedPrecondition("only an open escalation can be acknowledged", code="ESCALATION_NOT_OPEN")
        escalation.status, escalation.acknowledged_by, escalation.acknowledged_at = (
            "acknowledged", current_principal().subject, NOW)
        return escalation

    async def ResolveEscalation(self, request: Any, context: Any) -> conversation_pb2.Escalation:
        tenant_id = self._enter(context, "ResolveEscalation", request, scope="conversations:write")
        escalation = self._escalation(tenant_id, request.escalation_id)
        escalation.status, escalation.resolved_by, escalation.resolved_at, escalation.note = (
            "resolved", current_principal().subject, NOW, request.note)
        return escalation

    async def ListContacts(self, request: Any, context: Any) -> conversation_pb2.ListContactsResponse:
        tenant_id = self._enter(context, "ListContacts", request, scope="conversations:read")
        rows = sorted((c for c in self.d.contacts.values() if c.tenant_id == tenant_id
                       and (not request.q or request.q in c.name or request.q in c.phone)), key=lambda c: c.id)
        page, next_cursor = _page(rows, request)
        return conversation_pb2.ListContactsResponse(items=page, next_cursor=next_cursor)

    async def GetContact(self, request: Any, context: Any) -> conversation_pb2.Contact:
        tenant_id = self._enter(context, "GetContact", request, scope="conversations:read")
        return self._contact(tenant_id, request.contact_id)

    async def CreateContact(self, request: Any, context: Any) -> conversation_pb2.Contact:
        tenant_id = self._enter(context, "CreateContact", request, scope="conversations:write")
        if any(c.tenant_id == tenant_id and c.phone == request.phone for c in self.d.contacts.values()):
            raise AlreadyExists("a contact with this phone exists", code="CONTACT_EXISTS")
        contact = conversation_pb2.Contact(id=f"ct-{uuid.uuid4().hex[:8]}", tenant_id=tenant_id, wa_id=request.phone,
                                           name=request.name, phone=request.phone, created_at=NOW, updated_at=NOW)
        self.d.contacts[contact.id] = contact
        return contact

    async def UpdateContact(self, request: Any, context: Any) -> conversation_pb2.Contact:
        tenant_id = self._enter(context, "UpdateContact", request, scope="conversations:write")
        contact = self._contact(tenant_id, request.contact_id)
        for name in ("name", "phone"):
            if request.HasField(name):
                setattr(contact, name, getattr(request, name))
        return contact


class FakeMessaging(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self.d = directory
        self.requests: list[messaging_pb2.ListMessagesRequest] = []

    async def ListMessages(self, request: Any, context: Any) -> messaging_pb2.ListMessagesResponse:
        _record_token(self.d, context, "ListMessages")
        self.requests.append(request)
        current_principal().require_scope("messages:read")
        tenant_id = current_principal().tenant_scope(request.tenant_id if hasattr(request, "tenant_id") else "")
        conversation = self.d.conversations.get(request.conversation_id)
        if conversation is None or conversation.tenant_id != tenant_id:
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        items = self.d.messages.get(request.conversation_id, [])
        start = int(request.cursor or 0)
        limit = request.limit or 50
        page = items[start:start + limit]
        more = start + limit < len(items)
        return messaging_pb2.ListMessagesResponse(items=page, next_cursor=str(start + limit) if more else "")

    def _own_message(self, context: Any, method: str, message_id: str) -> messaging_pb2.Message:
        _record_token(self.d, context, method)
        principal = current_principal()
        principal.require_scope("messages:read")
        message = self.d.message(message_id)
        # `leaky-` messages are answered whatever the tenant (a buggy upstream)
        if message is None or (message.tenant_id != principal.require_tenant() and not message_id.startswith("leaky-")):
            raise NotFound("message not found", code="MESSAGE_NOT_FOUND")
        return message

    async def GetMessage(self, request: Any, context: Any) -> messaging_pb2.Message:
        return self._own_message(context, "GetMessage", request.message_id)

    async def GetMessageMedia(self, request: Any, context: Any) -> AsyncIterator[messaging_pb2.MediaChunk]:
        """The stored bytes in `media_chunk_size` chunks, the first with the metadata. A message whose id contains
        `broken` fails after its first chunk; one whose id contains `refused` fails before any."""
        message = self._own_message(context, "GetMessageMedia", request.message_id)
        if "refused" in message.id or message.media.status != "ready":
            raise FailedPrecondition("media not ready", code="MEDIA_NOT_READY")
        data = self.d.media[message.id]
        size = self.d.media_chunk_size
        for index, offset in enumerate(range(0, max(len(data), 1), size)):
            if index == 1 and "broken" in message.id:
                raise Unavailable("the media store went away", code="MEDIA_STORE_UNAVAILABLE")
            piece = data[offset:offset + size]
            if index == 0:
                yield messaging_pb2.MediaChunk(data=piece, mime_type=message.media.mime_type, size=len(data),
                                               filename=message.media.filename)
            else:
                yield messaging_pb2.MediaChunk(data=piece)


WEBHOOK_EVENTS = ("message.received", "message.status", "conversation.created", "conversation.updated",
                  "conversation.assigned", "escalation.raised", "escalation.updated")


class FakeWebhooks(webhooks_pb2_grpc.WebhookServiceServicer):
    """n8n-integration's WebhookService as it answers (admins of the caller's tenant only, its codes), in memory.
    Ids containing `leaky` are answered whatever the tenant (a buggy upstream, for the edge's defence in depth)."""

    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def _enter(self, context: Any, method: str, request: Any) -> str:
        _record_token(self.d, context, method)
        self.d.upstream_requests.append((method, request))
        principal = current_principal()
        if principal.is_api_key:
            raise PermissionDenied("an API key may not manage webhooks", code="API_KEY_NOT_ALLOWED")
        principal.require_role("admin", "super_admin")
        return principal.require_tenant()

    def _subscription(self, tenant_id: str, subscription_id: str) -> webhooks_pb2.Subscription:
        found = self.d.webhooks.get(subscription_id)
        if found is None or (found.tenant_id != tenant_id and "leaky" not in subscription_id):
            raise NotFound("webhook subscription not found", code="WEBHOOK_NOT_FOUND")
        return found

    def _delivery(self, tenant_id: str, delivery_id: str) -> webhooks_pb2.Delivery:
        found = self.d.webhook_deliveries.get(delivery_id)
        if found is None or (found.tenant_id != tenant_id and "leaky" not in delivery_id):
            raise NotFound("webhook delivery not found", code="WEBHOOK_DELIVERY_NOT_FOUND")
        return found

    @staticmethod
    def _check(url: str | None, events: list[str] | None) -> None:
        if url is not None and ("10.0.0.1" in url or "localhost" in url):
            raise InvalidArgument("the webhook URL reaches a private address", code="WEBHOOK_URL_NOT_ALLOWED")
        if events is not None and (not events or any(event not in WEBHOOK_EVENTS for event in events)):
            raise InvalidArgument("unknown event types", code="WEBHOOK_EVENTS_INVALID")

    def add_subscription(self, tenant_id: str, *, subscription_id: str | None = None,
                         url: str = "https://n8n.hotel.example/hook") -> webhooks_pb2.Subscription:
        subscription = webhooks_pb2.Subscription(
            id=subscription_id or str(uuid.uuid4()), tenant_id=tenant_id, url=url, events=["message.received"],
            state="active", created_at=NOW, updated_at=NOW, created_by="u-1")
        self.d.webhooks[subscription.id] = subscription
        return subscription

    async def CreateSubscription(self, request: Any, context: Any) -> webhooks_pb2.CreatedSubscription:
        tenant_id = self._enter(context, "CreateSubscription", request)
        self._check(request.url, list(request.events))
        secret = request.secret if request.HasField("secret") and request.secret else f"whsec_{uuid.uuid4().hex}"
        if len(secret) < 16:
            raise InvalidArgument("a secret has 16 to 256 printable characters", code="WEBHOOK_SECRET_INVALID")
        subscription = self.add_subscription(tenant_id, url=request.url)
        subscription.events[:] = list(dict.fromkeys(request.events))
        subscription.created_by = current_principal().subject
        return webhooks_pb2.CreatedSubscription(subscription=subscription, secret=secret)

    async def ListSubscriptions(self, request: Any, context: Any) -> webhooks_pb2.ListSubscriptionsResponse:
        tenant_id = self._enter(context, "ListSubscriptions", request)
        return webhooks_pb2.ListSubscriptionsResponse(
            items=[item for item in self.d.webhooks.values() if item.tenant_id == tenant_id])

    async def GetSubscription(self, request: Any, context: Any) -> webhooks_pb2.Subscription:
        return self._subscription(self._enter(context, "GetSubscription", request), request.subscription_id)

    async def UpdateSubscription(self, request: Any, context: Any) -> webhooks_pb2.Subscription:
        tenant_id = self._enter(context, "UpdateSubscription", request)
        subscription = self._subscription(tenant_id, request.subscription_id)
        self._check(request.url if request.HasField("url") else None,
                    list(request.events.items) if request.HasField("events") else None)
        if request.HasField("state") and request.state not in ("active", "paused"):
            raise InvalidArgument("state is one of active, paused", code="WEBHOOK_STATE_INVALID")
        if request.HasField("url"):
            subscription.url = request.url
        if request.HasField("events"):
            subscription.events[:] = list(request.events.items)
        if request.HasField("state"):
            subscription.state = request.state
            subscription.paused_reason = f"paused by {current_principal().subject}" if request.state == "paused" \
                else ""
        subscription.updated_at = "2026-11-29T11:00:00.000Z"
        return subscription

    async def DeleteSubscription(self, request: Any, context: Any) -> webhooks_pb2.DeleteSubscriptionResponse:
        tenant_id = self._enter(context, "DeleteSubscription", request)
        del self.d.webhooks[self._subscription(tenant_id, request.subscription_id).id]
        return webhooks_pb2.DeleteSubscriptionResponse()

    async def ListDeliveries(self, request: Any, context: Any) -> webhooks_pb2.ListDeliveriesResponse:
        tenant_id = self._enter(context, "ListDeliveries", request)
        if request.cursor == "junk":
            raise InvalidArgument("the cursor is not valid", code="INVALID_CURSOR")
        if request.from_time and request.to_time and request.from_time >= request.to_time:
            raise InvalidArgument("the range must end after it starts", code="WEBHOOK_TIME_RANGE_INVALID")
        items = sorted((item for item in self.d.webhook_deliveries.values() if item.tenant_id == tenant_id
                        and (not request.subscription_id or item.subscription_id == request.subscription_id)
                        and (not request.state or item.state == request.state)
                        and (not request.from_time or item.created_at >= request.from_time)
                        and (not request.to_time or item.created_at < request.to_time)),
                       key=lambda item: int(item.id), reverse=True)
        start = int(request.cursor or 0)
        limit = request.limit or 50
        page = items[start:start + limit]
        more = start + limit < len(items)
        return webhooks_pb2.ListDeliveriesResponse(items=page, next_cursor=str(start + limit) if more else "")

    async def GetDelivery(self, request: Any, context: Any) -> webhooks_pb2.Delivery:
        return self._delivery(self._enter(context, "GetDelivery", request), request.delivery_id)

    async def Redeliver(self, request: Any, context: Any) -> webhooks_pb2.Delivery:
        delivery = self._delivery(self._enter(context, "Redeliver", request), request.delivery_id)
        if delivery.state == "pending":
            raise FailedPrecondition("the delivery is still pending", code="WEBHOOK_DELIVERY_PENDING")
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = "pending", "", NOW
        return delivery

    async def RedeliverRange(self, request: Any, context: Any) -> webhooks_pb2.RedeliverRangeResponse:
        tenant_id = self._enter(context, "RedeliverRange", request)
        subscription = self._subscription(tenant_id, request.subscription_id)
        if not request.from_time or not request.to_time or request.from_time >= request.to_time:
            raise InvalidArgument("the range must end after it starts", code="WEBHOOK_TIME_RANGE_INVALID")
        again = [item for item in self.d.webhook_deliveries.values() if item.subscription_id == subscription.id
                 and item.state != "pending" and request.from_time <= item.created_at < request.to_time]
        for item in again:
            item.state, item.delivered_at = "pending", ""
        return webhooks_pb2.RedeliverRangeResponse(count=len(again))


# ---------------------------------------------------------------- servers


@dataclass
class Upstreams:
    directory: Directory
    messaging: FakeMessaging
    target: str
    webhooks: FakeWebhooks


@dataclass
class RunningGateway:
    url: str
    settings: Settings
    app: GatewayApp
    clients: UpstreamClients


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="session")
def issuer() -> TestTokenIssuer:
    return TestTokenIssuer()


@pytest.fixture(scope="session")
async def upstreams(issuer: TestTokenIssuer) -> AsyncIterator[Upstreams]:
    directory = Directory(issuer=issuer)
    messaging = FakeMessaging(directory)
    webhooks = FakeWebhooks(directory)
    servicers = [
        (auth_pb2_grpc.add_AuthServiceServicer_to_server, FakeAuth(directory)),
        (tenant_pb2_grpc.add_TenantServiceServicer_to_server, FakeTenant(directory)),
        (conversation_pb2_grpc.add_ConversationServiceServicer_to_server, FakeConversation(directory)),
        (messaging_pb2_grpc.add_MessagingServiceServicer_to_server, messaging),
        (webhooks_pb2_grpc.add_WebhookServiceServicer_to_server, webhooks),
    ]
    server = GrpcServer(
        registrars=[lambda s, add=add, servicer=servicer: add(servicer, s) for add, servicer in servicers],
        service_names=list(UPSTREAM_SERVICES.values()),
        verifier=issuer.verifier(),
        public_methods=PUBLIC_AUTH_METHODS,
    )
    await server.start()
    try:
        yield Upstreams(directory=directory, messaging=messaging, target=f"127.0.0.1:{server.port}",
                        webhooks=webhooks)
    finally:
        await server.stop(0)


def gateway_settings(infra: TestInfra, upstream_target: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service_name": "gateway-test",
        "environment": "test",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "redis_url": infra.redis_url,
        "auth_grpc_target": upstream_target,
        "tenant_grpc_target": upstream_target,
        "conversation_grpc_target": upstream_target,
        "messaging_grpc_target": upstream_target,
        "n8n_integration_grpc_target": upstream_target,
        "frontend_url": "http://localhost:5173",
        "service_client_secret": "gateway-test-client-secret",
        "socketio_channel": f"eva-socketio-test-{uuid.uuid4().hex[:8]}",
        "socket_auth_timeout_seconds": 0.6,
        "socket_sweep_interval_seconds": 0.2,
        "health_check_timeout_seconds": 0.5,
        "grpc_deadline_seconds": 3.0,
        # Limits out of the way of the other tests (the ones about limits set tiny ones); keys of its own.
        "rate_limit_user_per_minute": 100_000,
        "rate_limit_tenant_per_minute": 100_000,
        "rate_limit_auth_ip_per_minute": 100_000,
        "rate_limit_prefix": f"rl:gateway-test:{uuid.uuid4().hex[:8]}",
        # Socket.io: a quick catch-up; the per-socket event limit out of the way (its own test sets a tiny one).
        "socket_catch_up_interval_seconds": 0.2,
        "socket_events_per_second": 10_000,
        "socket_event_burst": 10_000,
        **overrides,
    }
    return Settings(**values)


async def start_gateway(settings: Settings, redis: Redis) -> tuple[RunningGateway, HttpServer]:
    """Wires the gateway the way main.py does (JWKS from the auth upstream over gRPC) and serves it."""
    clients = UpstreamClients(targets=settings.upstream_targets, deadline_seconds=settings.grpc_deadline_seconds,
                              health_timeout_seconds=settings.health_check_timeout_seconds)
    verifier = TokenVerifier(jwks_source=grpc_jwks_source(lambda: clients.channel("auth")),
                             issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                             revocations=RedisRevocations(redis))
    limiter = RateLimiter(redis, prefix=settings.rate_limit_prefix)
    app = create_gateway_app(settings=settings, clients=clients, verifier=verifier, redis=redis, limiter=limiter)
    server = HttpServer(app.asgi, host=settings.http_host, port=settings.http_port, proxy_headers=False)
    await server.start()
    return RunningGateway(f"http://127.0.0.1:{settings.http_port}", settings, app, clients), server


@pytest.fixture(scope="session")
async def redis(infra: TestInfra) -> AsyncIterator[Redis]:
    client = create_redis(infra.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def gateway(infra: TestInfra, upstreams: Upstreams, redis: Redis) -> AsyncIterator[RunningGateway]:
    running, server = await start_gateway(gateway_settings(infra, upstreams.target), redis)
    try:
        yield running
    finally:
        await running.app.sockets.close()
        await server.stop()
        await running.clients.close()


@pytest.fixture
async def gateway_factory(
    infra: TestInfra, upstreams: Upstreams, redis: Redis
) -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    """Starts extra gateways (settings overridden) for one test, e.g. with an upstream that is down."""
    started: list[tuple[RunningGateway, HttpServer]] = []

    async def start(**overrides: Any) -> RunningGateway:
        running, server = await start_gateway(gateway_settings(infra, upstreams.target, **overrides), redis)
        started.append((running, server))
        return running

    try:
        yield start
    finally:
        for running, server in started:
            await running.app.sockets.close()
            await server.stop()
            await running.clients.close()


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client


# ---------------------------------------------------------------- tenants and sockets


@dataclass
class Account:
    tenant_id: str
    user_id: str
    token: str


_counter = itertools.count()


@pytest.fixture
def make_account(upstreams: Upstreams, issuer: TestTokenIssuer) -> Callable[..., Account]:
    def make(*, role: str = "admin", ttl: int = 900, tenant_id: str | None = None) -> Account:
        directory = upstreams.directory
        tenant = directory.tenants[tenant_id] if tenant_id else directory.add_tenant(f"Hotel {next(_counter)}")
        user = directory.add_user(tenant_id=tenant.id, email=f"user{uuid.uuid4().hex[:8]}@hotel.example",
                                  password="a-good-password", role=role)
        return Account(tenant.id, user.id, issuer.user_token(user_id=user.id, tenant_id=tenant.id, role=role,
                                                             ttl=ttl))

    return make


@pytest.fixture
def seed_conversation(upstreams: Upstreams) -> Callable[..., None]:
    """Stores a conversation of `account`'s tenant with `messages` inbound text messages in the fake upstreams."""

    def seed(account: Account, conversation_id: str, *, messages: int = 0) -> None:
        directory = upstreams.directory
        directory.conversations[conversation_id] = conversation_pb2.Conversation(
            id=conversation_id, tenant_id=account.tenant_id, contact_id=f"k-{conversation_id}", status="open",
            unread_count=messages, created_at="2026-11-29T09:00:00Z", updated_at="2026-11-29T10:00:00Z",
            last_message_preview=f"message {messages - 1}" if messages else "",
            contact=conversation_pb2.Contact(id=f"k-{conversation_id}", tenant_id=account.tenant_id,
                                             wa_id="351910000001", name="Guest"),
        )
        directory.messages[conversation_id] = [
            messaging_pb2.Message(
                id=f"{conversation_id}-m{i}", tenant_id=account.tenant_id, conversation_id=conversation_id,
                contact_id=f"k-{conversation_id}", wamid=f"wamid.{conversation_id}.{i}", direction="inbound",
                type="text", status="RECEIVED", content_json=f'{{"body": "message {i}"}}',
                sent_at=f"2026-11-29T10:00:0{i}Z", created_at=f"2026-11-29T10:00:0{i}Z")
            for i in range(messages)
        ]

    return seed


class SocketProbe:
    """A real Socket.io client that records every server event and its disconnection."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_errors: list[Any] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Condition()

        @self.client.on("*")
        async def record(event: str, data: Any = None) -> None:
            async with self._changed:
                self.events.append((event, data))
                self._changed.notify_all()

        @self.client.on("connect_error")
        async def refused(data: Any = None) -> None:
            self.connect_errors.append(data)

        @self.client.on("disconnect")
        async def gone(*_: Any) -> None:
            self.disconnected.set()

    async def connect(self, url: str, *, token: str | None = None, transports: list[str] | None = None,
                      headers: dict[str, str] | None = None) -> None:
        await self.client.connect(url, auth={"token": token} if token is not None else None,
                                  transports=transports or ["websocket"], wait_timeout=5, headers=headers or {})

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data, timeout=5)

    async def next_event(self, name: str, timeout: float = 5.0) -> Any:
        async def seen() -> Any:
            async with self._changed:
                while True:
                    for event, data in self.events:
                        if event == name:
                            return data
                    await self._changed.wait()

        return await asyncio.wait_for(seen(), timeout)

    def names(self, *, presence: bool = False) -> list[str]:
        """The events received, in order (`presence:update` only if asked: every sign-in may announce one)."""
        return [event for event, _ in self.events if presence or event != "presence:update"]

    def all_of(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[[], SocketProbe]]:
    probes: list[SocketProbe] = []

    def make() -> SocketProbe:
        probe = SocketProbe()
        probes.append(probe)
        return probe

    try:
        yield make
    finally:
        for probe in probes:
            await probe.close()


async def wait_until(condition: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "") -> None:
    """Polls `condition` until it holds (a readiness wait, not an assertion)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def wait_subscribed(redis: Redis) -> Callable[..., Awaitable[None]]:
    """Waits until a gateway's Redis manager listens on a channel (it subscribes on its first connection)."""

    async def wait(channel: str, minimum: int = 1) -> None:
        async def subscribed() -> bool:
            counts = await redis.pubsub_numsub(channel)
            return bool(counts and counts[0][1] >= minimum)

        await wait_until(subscribed, what=f"a subscriber on {channel}")

    return wait


class Realtime:
    """Emits like the realtime service does: the real RedisSequencer (seq + replay buffer) and a write-only Redis
    manager on the gateway's channel. `assign` without `publish` is an event whose pub/sub message was lost."""

    def __init__(self, *, redis: Redis, redis_url: str, channel: str, buffer_size: int) -> None:
        self.sequencer = RedisSequencer(redis=redis, buffer_size=buffer_size, dedupe_ttl_seconds=600)
        self.manager = socketio.AsyncRedisManager(redis_url, channel=channel, write_only=True)

    async def assign(self, tenant_id: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        assignment = await self.sequencer.assign(tenant_id=tenant_id, event_id=uuid.uuid4().hex, event=event,
                                                 payload=payload)
        return {**payload, "seq": assignment.seq}

    async def publish(self, tenant_id: str, event: str, payload: dict[str, Any]) -> None:
        await self.manager.emit(event, payload, room=tenant_room(tenant_id), namespace="/")

    async def emit(self, tenant_id: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        sequenced = await self.assign(tenant_id, event, payload)
        await self.publish(tenant_id, event, sequenced)
        return sequenced

    async def close(self) -> None:
        if self.manager.redis is not None:
            await self.manager.redis.aclose()


@pytest.fixture
async def realtime(
    gateway: RunningGateway, redis: Redis
) -> AsyncIterator[Callable[..., Realtime]]:
    """make(buffer_size=1000, channel=the shared gateway's): Realtime emitters closed after the test."""
    made: list[Realtime] = []

    def make(*, buffer_size: int = 1000, channel: str | None = None) -> Realtime:
        emitter = Realtime(redis=redis, redis_url=gateway.settings.redis_url,
                           channel=channel or gateway.settings.socketio_channel, buffer_size=buffer_size)
        made.append(emitter)
        return emitter

    try:
        yield make
    finally:
        for emitter in made:
            await emitter.close()
