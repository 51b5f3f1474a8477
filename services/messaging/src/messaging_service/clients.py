"""ConversationService over gRPC: resolving the sender of an inbound message (with this service's own token) and
checking that a conversation is the caller's (with the caller's token)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import grpc
from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import Principal
from eva_common.errors import NotFound
from eva_common.grpc.client import rpc
from eva_events.messaging import ContactSnapshot

from messaging_service.inbound import InboundSender, ResolvedSender


@dataclass(frozen=True, slots=True)
class SendingProfile:
    """What sending for a tenant needs from TenantService.GetSendingCredentials."""

    tenant_id: str
    phone_number_id: str
    access_token: str = field(repr=False)
    waba_id: str
    display_phone_number: str
    coexistence: bool
    throughput_mps: int  # 0: the default for the number's kind
    tenant_status: str
    read_receipts: str  # on_read | never
    health: str


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """The conversation an outbound message goes to, as ConversationService.GetConversation shows it."""

    id: str
    tenant_id: str
    contact_id: str
    wa_id: str | None
    user_id: str | None
    phone_number_id: str | None
    window_expires_at: datetime | None
    last_inbound_at: datetime | None


def _instant(value: str) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class TokenSource(Protocol):
    """This service's own token (eva_common.auth.ServiceTokenProvider in production)."""

    async def token(self) -> str: ...


class ConversationClient:
    def __init__(self, *, channel: grpc.aio.Channel, tokens: TokenSource, timeout: float) -> None:
        self._stub = conversation_pb2_grpc.ConversationServiceStub(channel)
        self._tokens = tokens
        self._timeout = timeout

    async def resolve_inbound_contacts(
        self, *, tenant_id: str, senders: Sequence[InboundSender]
    ) -> list[ResolvedSender]:
        """The contact and conversation of each of a tenant's guests (one call, one transaction at the conversation
        service), in the order of `senders`."""
        request = conversation_pb2.ResolveInboundContactsRequest(contacts=[
            conversation_pb2.ResolveInboundContactRequest(
                tenant_id=tenant_id,
                wa_id=item.sender.wa_id or "",
                user_id=item.sender.user_id or "",
                profile_name=item.sender.profile_name or "",
                message_at=item.message_at.astimezone(UTC).isoformat(),
                phone_number_id=item.phone_number_id or "",
                echo=item.echo,  # a message the business sent from the WhatsApp Business app: the window is left alone
            ) for item in senders])
        response: conversation_pb2.ResolveInboundContactsResponse = await rpc(
            self._stub.ResolveInboundContacts, request, token=await self._tokens.token(), timeout=self._timeout
        )
        return [ResolvedSender(
            conversation_id=uuid.UUID(answer.conversation.id),
            contact=ContactSnapshot(id=answer.contact.id, wa_id=answer.contact.wa_id or None,
                                    name=answer.contact.name or None, phone=answer.contact.phone or None),
        ) for answer in response.contacts]

    async def conversation(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> ConversationInfo:
        """The tenant's conversation (NotFound CONVERSATION_NOT_FOUND when it is not the tenant's). Asked with this
        service's own token for the tenant the caller was already authorised in: sending needs `messages:send`, not
        the conversation scopes too."""
        request = conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_id)
        found: conversation_pb2.Conversation = await rpc(
            self._stub.GetConversation, request, token=await self._tokens.token(), timeout=self._timeout)
        return ConversationInfo(
            id=found.id, tenant_id=found.tenant_id, contact_id=found.contact_id or found.contact.id,
            wa_id=found.contact.wa_id or None, user_id=found.contact.user_id or None,
            phone_number_id=found.phone_number_id or None, window_expires_at=_instant(found.window_expires_at),
            last_inbound_at=_instant(found.last_inbound_at))

    async def conversation_exists(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> bool:
        request = conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_id)
        try:
            await rpc(self._stub.GetConversation, request, token=principal.token, timeout=self._timeout)
        except NotFound:
            return False
        return True


class TenantDirectory(Protocol):
    """What the messaging service asks of the tenant service (TenantCredentials; fakes in tests)."""

    async def access_token(self, *, tenant_id: str) -> str: ...

    async def sending_profile(self, *, tenant_id: str) -> SendingProfile: ...

    async def quota_exceeded(self, *, tenant_id: str) -> bool: ...

    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None: ...


class TenantCredentials:
    """TenantService.GetSendingCredentials with this service's own token: the tenant's WhatsApp access token."""

    def __init__(self, *, channel: grpc.aio.Channel, tokens: TokenSource, timeout: float) -> None:
        self._stub = tenant_pb2_grpc.TenantServiceStub(channel)
        self._tokens = tokens
        self._timeout = timeout

    async def access_token(self, *, tenant_id: str) -> str:
        return (await self.sending_profile(tenant_id=tenant_id)).access_token

    async def sending_profile(self, *, tenant_id: str) -> SendingProfile:
        response: tenant_pb2.SendingCredentials = await rpc(
            self._stub.GetSendingCredentials, tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant_id),
            token=await self._tokens.token(), timeout=self._timeout)
        return SendingProfile(
            tenant_id=response.tenant_id or tenant_id, phone_number_id=response.phone_number_id,
            access_token=response.access_token, waba_id=response.waba_id,
            display_phone_number=response.display_phone_number, coexistence=response.coexistence,
            throughput_mps=response.throughput_mps, tenant_status=response.tenant_status or "active",
            read_receipts=response.read_receipts or "on_read", health=response.health or "healthy")

    async def quota_exceeded(self, *, tenant_id: str) -> bool:
        """Whether the tenant used its plan's monthly messages (TenantService.GetPlanLimits)."""
        limits: tenant_pb2.PlanLimits = await rpc(
            self._stub.GetPlanLimits, tenant_pb2.GetPlanLimitsRequest(tenant_id=tenant_id),
            token=await self._tokens.token(), timeout=self._timeout)
        return limits.quota_exceeded

    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None:
        """Tells the tenant service Meta refused (or accepted again) the tenant's access token."""
        await rpc(self._stub.ReportWhatsAppHealth,
                  tenant_pb2.ReportWhatsAppHealthRequest(tenant_id=tenant_id, healthy=healthy, code=code,
                                                         detail=detail),
                  token=await self._tokens.token(), timeout=self._timeout)
