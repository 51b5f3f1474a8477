"""/api/conversations/*: the inbox (ConversationService): list, read, change, assign, tag.

Reads take API keys with `conversations:read`, changes with `conversations:write`. The messages of a conversation
are in routes/messaging.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from eva.conversation.v1 import conversation_pb2
from eva_common.auth import Principal
from eva_common.errors import InvalidArgument
from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from gateway.clients import UpstreamClients
from gateway.deps import ClientsDep, ConversationsReaderDep, ConversationsWriterDep
from gateway.problems import api_problems
from gateway.routes.params import ConversationId, Cursor, PageLimit, SearchText, TagId
from gateway.schemas.base import DEFAULT_PAGE_SIZE, optional, rfc3339
from gateway.schemas.conversation import (
    AssignIn,
    ConversationOut,
    ConversationPage,
    ConversationStatus,
    ConversationUpdateIn,
)
from gateway.visibility import ensure_visible, visible_items

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


def visible(principal: Principal, conversation: conversation_pb2.Conversation) -> ConversationOut:
    ensure_visible(principal, conversation.tenant_id, what="conversation")
    return ConversationOut.from_proto(conversation)


async def _one(
    clients: UpstreamClients, principal: Principal,
    method: Callable[..., Awaitable[conversation_pb2.Conversation]], request: Any,
) -> ConversationOut:
    """A call answering one conversation, shown only if it is the caller's tenant's."""
    return visible(principal, await clients.call(method, request, token=principal.token))


@router.get(
    "",
    summary="The inbox: conversations of the caller's tenant, most recent activity first, a page at a time",
    responses=api_problems(400, 409),
)
async def list_conversations(
    principal: ConversationsReaderDep,
    clients: ClientsDep,
    status: Annotated[ConversationStatus | None, Query(description="Only conversations in this status")] = None,
    attendant_id: Annotated[str | None, Query(alias="attendantId", min_length=1, max_length=128,
                                              description="Only conversations assigned to this user")] = None,
    unassigned: Annotated[bool, Query(description="Only conversations assigned to nobody")] = False,
    tag: Annotated[str | None, Query(min_length=1, max_length=128, description="A tag id or name")] = None,
    q: SearchText = None,
    updated_since: Annotated[AwareDatetime | None, Query(
        alias="updatedSince", description="RFC 3339 with an offset: only conversations changed since")] = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> ConversationPage:
    if unassigned and attendant_id:
        raise InvalidArgument("attendantId and unassigned=true exclude each other")
    since: datetime | None = updated_since
    page: conversation_pb2.ListConversationsResponse = await clients.call(
        clients.conversation.ListConversations,
        conversation_pb2.ListConversationsRequest(
            status=status or "", assigned_to=attendant_id or "", unassigned=unassigned, tag=tag or "", q=q or "",
            updated_since=rfc3339(since) if since else "", limit=limit, cursor=cursor or ""),
        token=principal.token,
    )
    items = visible_items(principal, page.items, what="conversation")
    return ConversationPage(items=[ConversationOut.from_proto(item) for item in items],
                          next_cursor=optional(page.next_cursor))


@router.get(
    "/{conversation_id}",
    summary="One conversation of the caller's tenant, with its contact",
    responses=api_problems(400, 404, 409),
)
async def get_conversation(
    conversation_id: ConversationId, principal: ConversationsReaderDep, clients: ClientsDep
) -> ConversationOut:
    return await _one(clients, principal, clients.conversation.GetConversation,
                          conversation_pb2.GetConversationRequest(conversation_id=conversation_id))


@router.patch(
    "/{conversation_id}",
    summary="Change a conversation's status (open, pending, resolved) or priority",
    responses=api_problems(400, 404, 409, 413, 422),
)
async def update_conversation(
    conversation_id: ConversationId, body: ConversationUpdateIn, principal: ConversationsWriterDep,
    clients: ClientsDep,
) -> ConversationOut:
    return await _one(clients, principal, clients.conversation.UpdateConversation, body.to_proto(conversation_id))


@router.post(
    "/{conversation_id}/assign",
    summary="Assign a conversation to an active user of the tenant, or to nobody (attendantId null)",
    responses=api_problems(400, 404, 409, 413, 422),
)
async def assign_conversation(
    conversation_id: ConversationId, body: AssignIn, principal: ConversationsWriterDep, clients: ClientsDep
) -> ConversationOut:
    return await _one(clients, principal, clients.conversation.AssignConversation, body.to_proto(conversation_id))


@router.post(
    "/{conversation_id}/tags/{tag_id}",
    summary="Attach a tag to a conversation (attaching it again changes nothing)",
    responses=api_problems(400, 404, 409),
)
async def attach_tag(
    conversation_id: ConversationId, tag_id: TagId, principal: ConversationsWriterDep, clients: ClientsDep
) -> ConversationOut:
    return await _one(clients, principal, clients.conversation.AttachTag,
                          conversation_pb2.AttachTagRequest(conversation_id=conversation_id, tag_id=tag_id))


@router.delete(
    "/{conversation_id}/tags/{tag_id}",
    summary="Detach a tag from a conversation",
    responses=api_problems(400, 404, 409),
)
async def detach_tag(
    conversation_id: ConversationId, tag_id: TagId, principal: ConversationsWriterDep, clients: ClientsDep
) -> ConversationOut:
    return await _one(clients, principal, clients.conversation.DetachTag,
                          conversation_pb2.DetachTagRequest(conversation_id=conversation_id, tag_id=tag_id))
