"""gRPC ConversationService: proto <-> domain mapping only; DomainErrors are mapped by the shared interceptor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from eva_common.auth import current_principal
from eva_common.errors import InvalidArgument

from conversation_service.models import Contact, Conversation
from conversation_service.service import ConversationService, InboundContact

SERVICE_NAME = conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name


def rfc3339(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(value: str, *, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidArgument(f"{field} is not an RFC 3339 timestamp", code="VALIDATION_FAILED") from error
    if parsed.tzinfo is None:
        raise InvalidArgument(f"{field} needs a UTC offset", code="VALIDATION_FAILED")
    return parsed.astimezone(UTC)


def contact_message(contact: Contact) -> conversation_pb2.Contact:
    return conversation_pb2.Contact(
        id=str(contact.id),
        tenant_id=contact.tenant_id,
        wa_id=contact.wa_id or "",
        user_id=contact.user_id or "",
        name=contact.name or "",
        phone=contact.phone or "",
        created_at=rfc3339(contact.created_at),
        updated_at=rfc3339(contact.updated_at),
    )


def conversation_message(conversation: Conversation, contact: Contact) -> conversation_pb2.Conversation:
    return conversation_pb2.Conversation(
        id=str(conversation.id),
        tenant_id=conversation.tenant_id,
        contact_id=str(conversation.contact_id),
        status=conversation.status,
        assigned_to=conversation.assigned_to or "",
        priority=conversation.priority,
        last_message_at=rfc3339(conversation.last_message_at),
        window_expires_at=rfc3339(conversation.window_expires_at),
        unread_count=conversation.unread_count,
        created_at=rfc3339(conversation.created_at),
        updated_at=rfc3339(conversation.updated_at),
        contact=contact_message(contact),
        phone_number_id=conversation.phone_number_id or "",
    )


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, *, service: ConversationService) -> None:
        self._service = service

    async def ResolveInboundContact(
        self, request: conversation_pb2.ResolveInboundContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ResolveInboundContactResponse:
        resolved = await self._service.resolve_inbound_contact(
            principal=current_principal(),
            inbound=InboundContact(
                tenant_id=request.tenant_id,
                wa_id=request.wa_id or None,
                user_id=request.user_id or None,
                profile_name=request.profile_name or None,
                message_at=parse_rfc3339(request.message_at, field="message_at"),
                phone_number_id=request.phone_number_id or None,
            ),
        )
        return conversation_pb2.ResolveInboundContactResponse(
            contact=contact_message(resolved.contact),
            conversation=conversation_message(resolved.conversation, resolved.contact),
            contact_created=resolved.contact_created,
            conversation_created=resolved.conversation_created,
        )

    async def GetConversation(
        self, request: conversation_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        conversation, contact = await self._service.get_conversation(
            principal=current_principal(), conversation_id=request.conversation_id, tenant_id=request.tenant_id
        )
        return conversation_message(conversation, contact)

    async def GetContact(
        self, request: conversation_pb2.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Contact:
        contact = await self._service.get_contact(
            principal=current_principal(), contact_id=request.contact_id, tenant_id=request.tenant_id
        )
        return contact_message(contact)


def registrar(servicer: ConversationServicer) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        conversation_pb2_grpc.add_ConversationServiceServicer_to_server(servicer, server)

    return register
