"""gRPC ConversationService: proto <-> domain mapping only; DomainErrors are mapped by the shared interceptor."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from eva_common.audit import Actor
from eva_common.auth import current_principal
from eva_common.errors import InvalidArgument
from eva_common.grpc.metadata import request_meta
from eva_common.timefmt import parse_rfc3339, rfc3339

from conversation_service.contacts import ContactService
from conversation_service.escalations import EscalationService
from conversation_service.models import Contact, Conversation, Escalation, Tag
from conversation_service.service import (
    ConversationDetails,
    ConversationQuery,
    ConversationService,
    InboundContact,
    ResolvedInbound,
)
from conversation_service.tags import TagService

SERVICE_NAME = conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name


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


def tag_message(tag: Tag) -> conversation_pb2.Tag:
    return conversation_pb2.Tag(id=str(tag.id), name=tag.name, color=tag.color, created_at=rfc3339(tag.created_at),
                                updated_at=rfc3339(tag.updated_at))


def escalation_message(escalation: Escalation) -> conversation_pb2.Escalation:
    return conversation_pb2.Escalation(
        id=str(escalation.id),
        tenant_id=escalation.tenant_id,
        conversation_id=str(escalation.conversation_id),
        reason=escalation.reason,
        priority=escalation.priority,
        status=escalation.status,
        raised_by=escalation.raised_by or "",
        acknowledged_by=escalation.acknowledged_by or "",
        resolved_by=escalation.resolved_by or "",
        note=escalation.note or "",
        created_at=rfc3339(escalation.created_at),
        acknowledged_at=rfc3339(escalation.acknowledged_at),
        resolved_at=rfc3339(escalation.resolved_at),
    )


def details_message(details: ConversationDetails) -> conversation_pb2.Conversation:
    return conversation_message(details.conversation, details.contact, details.tags)


def conversation_message(
    conversation: Conversation, contact: Contact, tags: list[Tag] | None = None
) -> conversation_pb2.Conversation:
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
        last_message_preview=conversation.last_message_preview or "",
        last_inbound_at=rfc3339(conversation.last_inbound_at),
        tags=[tag_message(tag) for tag in tags or ()],
    )


def actor(context: grpc.aio.ServicerContext) -> Actor:
    """The verified caller, with the gateway's view of its address and agent (for audit only)."""
    return Actor(principal=current_principal(), meta=request_meta(context))


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(
        self,
        *,
        service: ConversationService,
        tags: TagService,
        escalations: EscalationService,
        contacts: ContactService,
    ) -> None:
        self._service = service
        self._tags = tags
        self._escalations = escalations
        self._contacts = contacts

    async def ResolveInboundContact(
        self, request: conversation_pb2.ResolveInboundContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ResolveInboundContactResponse:
        resolved = await self._service.resolve_inbound_contact(principal=current_principal(),
                                                               inbound=_inbound_contact(request))
        return _resolved_message(resolved)

    async def ResolveInboundContacts(
        self, request: conversation_pb2.ResolveInboundContactsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ResolveInboundContactsResponse:
        if len(request.contacts) > MAX_CONTACTS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_CONTACTS_PER_CALL} contacts per call", code="TOO_MANY_CONTACTS")
        resolved = await self._service.resolve_inbound_contacts(
            principal=current_principal(), inbounds=[_inbound_contact(item) for item in request.contacts])
        return conversation_pb2.ResolveInboundContactsResponse(contacts=[_resolved_message(r) for r in resolved])

    async def GetConversation(
        self, request: conversation_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        details = await self._service.conversation_details(
            principal=current_principal(), conversation_id=request.conversation_id, tenant_id=request.tenant_id
        )
        return details_message(details)

    async def GetContact(
        self, request: conversation_pb2.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Contact:
        contact = await self._service.get_contact(
            principal=current_principal(), contact_id=request.contact_id, tenant_id=request.tenant_id
        )
        return contact_message(contact)

    # the inbox

    async def ListConversations(
        self, request: conversation_pb2.ListConversationsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ListConversationsResponse:
        page = await self._service.list_conversations(
            principal=current_principal(),
            query=ConversationQuery(
                status=request.status,
                assigned_to=request.assigned_to,
                unassigned=request.unassigned,
                tag=request.tag,
                q=request.q,
                updated_since=parse_rfc3339(request.updated_since, field="updated_since"),
                limit=request.limit,
                cursor=request.cursor,
            ),
        )
        return conversation_pb2.ListConversationsResponse(
            items=[details_message(item) for item in page.items], next_cursor=page.next_cursor or ""
        )

    async def UpdateConversation(
        self, request: conversation_pb2.UpdateConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        details = await self._service.update_conversation(
            actor=actor(context),
            conversation_id=request.conversation_id,
            status=request.status if request.HasField("status") else None,
            priority=request.priority if request.HasField("priority") else None,
        )
        return details_message(details)

    async def AssignConversation(
        self, request: conversation_pb2.AssignConversationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        details = await self._service.assign_conversation(
            actor=actor(context), conversation_id=request.conversation_id, attendant_id=request.attendant_id
        )
        return details_message(details)

    # tags

    async def ListTags(
        self, request: conversation_pb2.ListTagsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ListTagsResponse:
        tags = await self._tags.list_tags(principal=current_principal())
        return conversation_pb2.ListTagsResponse(items=[tag_message(tag) for tag in tags])

    async def CreateTag(
        self, request: conversation_pb2.CreateTagRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Tag:
        return tag_message(await self._tags.create_tag(actor=actor(context), name=request.name, color=request.color))

    async def UpdateTag(
        self, request: conversation_pb2.UpdateTagRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Tag:
        tag = await self._tags.update_tag(
            actor=actor(context),
            tag_id=request.tag_id,
            name=request.name if request.HasField("name") else None,
            color=request.color if request.HasField("color") else None,
        )
        return tag_message(tag)

    async def DeleteTag(
        self, request: conversation_pb2.DeleteTagRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.DeleteTagResponse:
        await self._tags.delete_tag(actor=actor(context), tag_id=request.tag_id)
        return conversation_pb2.DeleteTagResponse()

    async def AttachTag(
        self, request: conversation_pb2.AttachTagRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        details = await self._service.change_tag(
            actor=actor(context), conversation_id=request.conversation_id, tag_id=request.tag_id, attach=True
        )
        return details_message(details)

    async def DetachTag(
        self, request: conversation_pb2.DetachTagRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Conversation:
        details = await self._service.change_tag(
            actor=actor(context), conversation_id=request.conversation_id, tag_id=request.tag_id, attach=False
        )
        return details_message(details)

    # escalations

    async def RaiseEscalation(
        self, request: conversation_pb2.RaiseEscalationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Escalation:
        escalation = await self._escalations.raise_escalation(
            actor=actor(context), conversation_id=request.conversation_id, reason=request.reason,
            priority=request.priority,
        )
        return escalation_message(escalation)

    async def ListEscalations(
        self, request: conversation_pb2.ListEscalationsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ListEscalationsResponse:
        page = await self._escalations.list_escalations(
            principal=current_principal(), status=request.status, conversation_id=request.conversation_id,
            limit=request.limit, cursor=request.cursor,
        )
        return conversation_pb2.ListEscalationsResponse(
            items=[escalation_message(item) for item in page.items], next_cursor=page.next_cursor or ""
        )

    async def AcknowledgeEscalation(
        self, request: conversation_pb2.AcknowledgeEscalationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Escalation:
        escalation = await self._escalations.acknowledge(actor=actor(context), escalation_id=request.escalation_id)
        return escalation_message(escalation)

    async def ResolveEscalation(
        self, request: conversation_pb2.ResolveEscalationRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Escalation:
        escalation = await self._escalations.resolve(
            actor=actor(context), escalation_id=request.escalation_id, note=request.note
        )
        return escalation_message(escalation)

    # contacts

    async def ListContacts(
        self, request: conversation_pb2.ListContactsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ListContactsResponse:
        page = await self._contacts.list_contacts(
            principal=current_principal(), q=request.q, limit=request.limit, cursor=request.cursor
        )
        return conversation_pb2.ListContactsResponse(
            items=[contact_message(item) for item in page.items], next_cursor=page.next_cursor or ""
        )

    async def CreateContact(
        self, request: conversation_pb2.CreateContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Contact:
        contact = await self._contacts.create_contact(actor=actor(context), name=request.name, phone=request.phone)
        return contact_message(contact)

    async def UpdateContact(
        self, request: conversation_pb2.UpdateContactRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Contact:
        contact = await self._contacts.update_contact(
            actor=actor(context),
            contact_id=request.contact_id,
            name=request.name if request.HasField("name") else None,
            phone=request.phone if request.HasField("phone") else None,
        )
        return contact_message(contact)


def registrar(servicer: ConversationServicer) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        conversation_pb2_grpc.add_ConversationServiceServicer_to_server(servicer, server)

    return register


MAX_CONTACTS_PER_CALL = 500


def _inbound_contact(request: conversation_pb2.ResolveInboundContactRequest) -> InboundContact:
    return InboundContact(
        tenant_id=request.tenant_id,
        wa_id=request.wa_id or None,
        user_id=request.user_id or None,
        profile_name=request.profile_name or None,
        message_at=parse_rfc3339(request.message_at, field="message_at"),
        phone_number_id=request.phone_number_id or None,
        echo=request.echo,
    )


def _resolved_message(resolved: ResolvedInbound) -> conversation_pb2.ResolveInboundContactResponse:
    return conversation_pb2.ResolveInboundContactResponse(
        contact=contact_message(resolved.contact),
        conversation=conversation_message(resolved.conversation, resolved.contact),
        contact_created=resolved.contact_created,
        conversation_created=resolved.conversation_created,
    )
