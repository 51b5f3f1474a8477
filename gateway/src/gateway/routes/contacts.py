"""/api/contacts: the tenant's guests (ConversationService). Reads take API keys with `conversations:read`,
changes with `conversations:write`."""

from __future__ import annotations

from eva.conversation.v1 import conversation_pb2
from eva_common.auth import Principal
from fastapi import APIRouter, status

from gateway.deps import ClientsDep, ConversationsReaderDep, ConversationsWriterDep
from gateway.problems import api_problems
from gateway.routes.params import ContactId, Cursor, PageLimit, SearchText
from gateway.schemas.base import DEFAULT_PAGE_SIZE, optional
from gateway.schemas.contacts import ContactCreateIn, ContactPage, ContactUpdateIn
from gateway.schemas.conversation import ContactOut
from gateway.visibility import ensure_visible, visible_items

router = APIRouter(prefix="/api/contacts", tags=["contacts"])


def visible(principal: Principal, contact: conversation_pb2.Contact) -> ContactOut:
    ensure_visible(principal, contact.tenant_id, what="contact")
    return ContactOut.from_proto(contact)


@router.get("", summary="Contacts of the caller's tenant (search by name or phone), a page at a time",
            responses=api_problems(400, 409))
async def list_contacts(principal: ConversationsReaderDep, clients: ClientsDep, q: SearchText = None,
                        limit: PageLimit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> ContactPage:
    page: conversation_pb2.ListContactsResponse = await clients.call(
        clients.conversation.ListContacts,
        conversation_pb2.ListContactsRequest(q=q or "", limit=limit, cursor=cursor or ""), token=principal.token)
    items = visible_items(principal, page.items, what="contact")
    return ContactPage(items=[ContactOut.from_proto(item) for item in items], next_cursor=optional(page.next_cursor))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a contact (phone: digits with country code)",
             responses=api_problems(400, 409, 413, 422))
async def create_contact(body: ContactCreateIn, principal: ConversationsWriterDep, clients: ClientsDep) -> ContactOut:
    contact: conversation_pb2.Contact = await clients.call(clients.conversation.CreateContact, body.to_proto(),
                                                           token=principal.token)
    return visible(principal, contact)


@router.get("/{contact_id}", summary="One contact of the caller's tenant", responses=api_problems(400, 404, 409))
async def get_contact(contact_id: ContactId, principal: ConversationsReaderDep, clients: ClientsDep) -> ContactOut:
    contact: conversation_pb2.Contact = await clients.call(
        clients.conversation.GetContact, conversation_pb2.GetContactRequest(contact_id=contact_id),
        token=principal.token)
    return visible(principal, contact)


@router.patch("/{contact_id}", summary="Change a contact's name or phone",
              responses=api_problems(400, 404, 409, 413, 422))
async def update_contact(contact_id: ContactId, body: ContactUpdateIn, principal: ConversationsWriterDep,
                         clients: ClientsDep) -> ContactOut:
    contact: conversation_pb2.Contact = await clients.call(clients.conversation.UpdateContact,
                                                           body.to_proto(contact_id), token=principal.token)
    return visible(principal, contact)
