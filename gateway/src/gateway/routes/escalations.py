"""/api/escalations: escalations raised on conversations (ConversationService). Listing takes API keys with
`conversations:read`; raising, acknowledging and resolving with `conversations:write`."""

from __future__ import annotations

from typing import Annotated

from eva.conversation.v1 import conversation_pb2
from eva_common.auth import Principal
from fastapi import APIRouter, Query, status

from gateway.deps import ClientsDep, ConversationsReaderDep, ConversationsWriterDep
from gateway.problems import api_problems
from gateway.routes.params import Cursor, EscalationId, PageLimit
from gateway.schemas.base import DEFAULT_PAGE_SIZE, optional
from gateway.schemas.escalations import (
    EscalationCreateIn,
    EscalationOut,
    EscalationPage,
    EscalationResolveIn,
    EscalationStatus,
)
from gateway.visibility import ensure_visible, visible_items

router = APIRouter(prefix="/api/escalations", tags=["escalations"])


def visible(principal: Principal, escalation: conversation_pb2.Escalation) -> EscalationOut:
    ensure_visible(principal, escalation.tenant_id, what="escalation")
    return EscalationOut.from_proto(escalation)


@router.get("", summary="Escalations of the caller's tenant, newest first, a page at a time",
            responses=api_problems(400, 409))
async def list_escalations(
    principal: ConversationsReaderDep,
    clients: ClientsDep,
    status: Annotated[EscalationStatus | None, Query(description="Only escalations in this status")] = None,
    conversation_id: Annotated[str | None, Query(alias="conversationId", min_length=1, max_length=128,
                                                 description="Only the escalations of this conversation")] = None,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> EscalationPage:
    page: conversation_pb2.ListEscalationsResponse = await clients.call(
        clients.conversation.ListEscalations,
        conversation_pb2.ListEscalationsRequest(status=status or "", conversation_id=conversation_id or "",
                                                limit=limit, cursor=cursor or ""),
        token=principal.token,
    )
    items = visible_items(principal, page.items, what="escalation")
    return EscalationPage(items=[EscalationOut.from_proto(item) for item in items],
                          next_cursor=optional(page.next_cursor))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Raise an escalation on a conversation",
             responses=api_problems(400, 404, 409, 413, 422))
async def raise_escalation(body: EscalationCreateIn, principal: ConversationsWriterDep,
                           clients: ClientsDep) -> EscalationOut:
    escalation: conversation_pb2.Escalation = await clients.call(
        clients.conversation.RaiseEscalation, body.to_proto(), token=principal.token)
    return visible(principal, escalation)


@router.post("/{escalation_id}/acknowledge", summary="Acknowledge an open escalation",
             responses=api_problems(400, 404, 409, 422))
async def acknowledge_escalation(escalation_id: EscalationId, principal: ConversationsWriterDep,
                                 clients: ClientsDep) -> EscalationOut:
    escalation: conversation_pb2.Escalation = await clients.call(
        clients.conversation.AcknowledgeEscalation,
        conversation_pb2.AcknowledgeEscalationRequest(escalation_id=escalation_id), token=principal.token)
    return visible(principal, escalation)


@router.post("/{escalation_id}/resolve", summary="Resolve an escalation, with an optional note",
             responses=api_problems(400, 404, 409, 413, 422))
async def resolve_escalation(escalation_id: EscalationId, principal: ConversationsWriterDep, clients: ClientsDep,
                             body: EscalationResolveIn | None = None) -> EscalationOut:
    request = (body or EscalationResolveIn()).to_proto(escalation_id)
    escalation: conversation_pb2.Escalation = await clients.call(
        clients.conversation.ResolveEscalation, request, token=principal.token)
    return visible(principal, escalation)
