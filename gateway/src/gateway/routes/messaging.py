"""Messages (MessagingService): /api/messages and /api/conversations/{id}/messages."""

from __future__ import annotations

from typing import Annotated

from eva.messaging.v1 import messaging_pb2
from fastapi import APIRouter, Query

from gateway.clients import UpstreamClients
from gateway.deps import ClientsDep, MessagesReaderDep
from gateway.problems import api_problems
from gateway.routes.params import ConversationId, Cursor, PageLimit
from gateway.schemas.messaging import DEFAULT_PAGE_SIZE, MessagePage

router = APIRouter(tags=["messages"])


async def _list_messages(
    clients: UpstreamClients, *, token: str, conversation_id: str, limit: int, cursor: str | None
) -> MessagePage:
    page: messaging_pb2.ListMessagesResponse = await clients.call(
        clients.messaging.ListMessages,
        messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, limit=limit, cursor=cursor or ""),
        token=token,
    )
    return MessagePage.from_proto(page)


@router.get(
    "/api/messages",
    summary="A page of a conversation's messages",
    responses=api_problems(400, 404, 409),
)
async def list_messages(
    conversation_id: Annotated[str, Query(alias="conversationId", min_length=1, max_length=128)],
    principal: MessagesReaderDep,
    clients: ClientsDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> MessagePage:
    return await _list_messages(
        clients, token=principal.token, conversation_id=conversation_id, limit=limit, cursor=cursor
    )


@router.get(
    "/api/conversations/{conversation_id}/messages",
    summary="A page of a conversation's messages",
    responses=api_problems(400, 404, 409),
)
async def list_conversation_messages(
    conversation_id: ConversationId,
    principal: MessagesReaderDep,
    clients: ClientsDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> MessagePage:
    return await _list_messages(
        clients, token=principal.token, conversation_id=conversation_id, limit=limit, cursor=cursor
    )
