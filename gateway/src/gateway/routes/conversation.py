"""/api/conversations/*: conversations and their contacts (ConversationService)."""

from __future__ import annotations

from typing import Annotated

from eva.conversation.v1 import conversation_pb2
from eva_common.errors import NotFound
from fastapi import APIRouter, Path

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import problem_responses
from gateway.schemas.conversation import ConversationOut

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

ConversationId = Annotated[str, Path(min_length=1, max_length=128, description="The conversation's id")]


@router.get(
    "/{conversation_id}",
    summary="One conversation of the caller's tenant, with its contact",
    responses=problem_responses(400, 401, 404, 409, 503, 504),
)
async def get_conversation(
    conversation_id: ConversationId, principal: PrincipalDep, clients: ClientsDep
) -> ConversationOut:
    conversation: conversation_pb2.Conversation = await clients.call(
        clients.conversation.GetConversation,
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
        token=principal.token,
    )
    if conversation.tenant_id != principal.tenant_id:  # defence in depth: the service scopes by the token too
        raise NotFound("conversation not found", code="NOT_FOUND")
    return ConversationOut.from_proto(conversation)
