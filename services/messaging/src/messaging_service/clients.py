"""ConversationService over gRPC: resolving the sender of an inbound message (with this service's own token) and
checking that a conversation is the caller's (with the caller's token)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

import grpc
from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from eva.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from eva_common.auth import Principal
from eva_common.errors import NotFound
from eva_common.grpc.client import rpc
from eva_events.messaging import ContactSnapshot

from messaging_service.inbound import ResolvedSender
from messaging_service.webhook import Sender


class TokenSource(Protocol):
    """This service's own token (eva_common.auth.ServiceTokenProvider in production)."""

    async def token(self) -> str: ...


class ConversationClient:
    def __init__(self, *, channel: grpc.aio.Channel, tokens: TokenSource, timeout: float) -> None:
        self._stub = conversation_pb2_grpc.ConversationServiceStub(channel)
        self._tokens = tokens
        self._timeout = timeout

    async def resolve_inbound_contact(
        self, *, tenant_id: str, sender: Sender, message_at: datetime, phone_number_id: str | None
    ) -> ResolvedSender:
        request = conversation_pb2.ResolveInboundContactRequest(
            tenant_id=tenant_id,
            wa_id=sender.wa_id or "",
            user_id=sender.user_id or "",
            profile_name=sender.profile_name or "",
            message_at=message_at.astimezone(UTC).isoformat(),
            phone_number_id=phone_number_id or "",
        )
        response: conversation_pb2.ResolveInboundContactResponse = await rpc(
            self._stub.ResolveInboundContact, request, token=await self._tokens.token(), timeout=self._timeout
        )
        contact = response.contact
        return ResolvedSender(
            conversation_id=uuid.UUID(response.conversation.id),
            contact=ContactSnapshot(
                id=contact.id, wa_id=contact.wa_id or None, name=contact.name or None, phone=contact.phone or None
            ),
        )

    async def conversation_exists(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> bool:
        request = conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_id)
        try:
            await rpc(self._stub.GetConversation, request, token=principal.token, timeout=self._timeout)
        except NotFound:
            return False
        return True


class TenantCredentials:
    """TenantService.GetSendingCredentials with this service's own token: the tenant's WhatsApp access token."""

    def __init__(self, *, channel: grpc.aio.Channel, tokens: TokenSource, timeout: float) -> None:
        self._stub = tenant_pb2_grpc.TenantServiceStub(channel)
        self._tokens = tokens
        self._timeout = timeout

    async def access_token(self, *, tenant_id: str) -> str:
        response: tenant_pb2.SendingCredentials = await rpc(
            self._stub.GetSendingCredentials, tenant_pb2.GetSendingCredentialsRequest(tenant_id=tenant_id),
            token=await self._tokens.token(), timeout=self._timeout)
        return response.access_token
