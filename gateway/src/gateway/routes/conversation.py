"""/api/conversations/*: conversations and their contacts (ConversationService)."""

from __future__ import annotations

from eva.conversation.v1 import conversation_pb2
from eva_common.errors import NotFound
from fastapi import APIRouter

from gateway.deps import ClientsDep, ConversationsReaderDep
from gateway.problems import api_problems
from gateway.routes.params import ConversationId
from gateway.schemas.conversation import ConversationOut

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


@router.get(
    "/{conversation_id}",
    summary="One conversation of the caller's tenant, with its contact",
    responses=api_problems(400, 404, 409),
)
async def get_conversation(
    conversation_id: ConversationId, principal: ConversationsReaderDep, clients: ClientsDep
) -> ConversationOut:
    conversation: conversation_pb2.Conversation = await clients.call(
        clients.conversation.GetConversation,
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
        token=principal.token,
    )
    if conversation.tenant_id != principal.tenant_id:  # defence in depth: the service scopes by the token too
        raise NotFound("conversation not found", code="NOT_FOUND")
    return ConversationOut.from_proto(conversation)
