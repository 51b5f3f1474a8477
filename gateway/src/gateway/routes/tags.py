"""/api/tags: the tenant's tags (ConversationService). Listing takes API keys with `conversations:read`, changes
with `conversations:write`; attaching and detaching are under /api/conversations/{id}/tags."""

from __future__ import annotations

from eva.conversation.v1 import conversation_pb2
from fastapi import APIRouter, status

from gateway.deps import ClientsDep, ConversationsReaderDep, ConversationsWriterDep
from gateway.problems import api_problems
from gateway.routes.params import TagId
from gateway.schemas.tags import TagCreateIn, TagList, TagOut, TagUpdateIn

router = APIRouter(prefix="/api/tags", tags=["tags"])


@router.get("", summary="Every tag of the caller's tenant", responses=api_problems(409))
async def list_tags(principal: ConversationsReaderDep, clients: ClientsDep) -> TagList:
    tags: conversation_pb2.ListTagsResponse = await clients.call(
        clients.conversation.ListTags, conversation_pb2.ListTagsRequest(), token=principal.token)
    return TagList(items=[TagOut.from_proto(tag) for tag in tags.items])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a tag (names are unique per tenant)",
             responses=api_problems(400, 409, 413, 422))
async def create_tag(body: TagCreateIn, principal: ConversationsWriterDep, clients: ClientsDep) -> TagOut:
    tag: conversation_pb2.Tag = await clients.call(clients.conversation.CreateTag, body.to_proto(),
                                                   token=principal.token)
    return TagOut.from_proto(tag)


@router.patch("/{tag_id}", summary="Rename or recolour a tag", responses=api_problems(400, 404, 409, 413, 422))
async def update_tag(tag_id: TagId, body: TagUpdateIn, principal: ConversationsWriterDep,
                     clients: ClientsDep) -> TagOut:
    tag: conversation_pb2.Tag = await clients.call(clients.conversation.UpdateTag, body.to_proto(tag_id),
                                                   token=principal.token)
    return TagOut.from_proto(tag)


@router.delete("/{tag_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a tag (it is detached from every conversation)", responses=api_problems(400, 404, 409))
async def delete_tag(tag_id: TagId, principal: ConversationsWriterDep, clients: ClientsDep) -> None:
    await clients.call(clients.conversation.DeleteTag, conversation_pb2.DeleteTagRequest(tag_id=tag_id),
                       token=principal.token)
