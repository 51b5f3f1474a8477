"""Messages (MessagingService): reading them (/api/messages, /api/conversations/{id}/messages, a message's media;
API keys with `messages:read`) and answering guests (POST /api/messages, retry, read; API keys with
`messages:send`)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from eva.messaging.v1 import messaging_pb2
from eva_common.errors import DomainError, FailedPrecondition, NotFound
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from gateway.clients import UpstreamClients
from gateway.deps import ClientsDep, MessagesReaderDep, MessagesSenderDep, SendAdmissionDep
from gateway.media import content_disposition, media_type
from gateway.problems import api_problems
from gateway.routes.params import ConversationId, Cursor, MessageId, PageLimit
from gateway.schemas.messaging import DEFAULT_PAGE_SIZE, MessageOut, MessagePage, ReadOut, SendMessageIn
from gateway.visibility import ensure_visible

logger = logging.getLogger(__name__)
router = APIRouter(tags=["messages"])

MEDIA_READY = "ready"
MEDIA_PENDING = "pending"
_MEDIA_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The media's bytes, streamed; Content-Type is the media's MIME type, Content-Length its size "
                       "when known, Content-Disposition `attachment` with the filename for documents",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}


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


async def _relay(
    first: messaging_pb2.MediaChunk, rest: AsyncGenerator[Any, None], message_id: str
) -> AsyncIterator[bytes]:
    async with aclosing(rest):
        if first.data:
            yield first.data
        try:
            async for chunk in rest:
                if chunk.data:
                    yield chunk.data
        except DomainError as error:
            # The headers are gone already: aborting the response is the only way to tell the client.
            logger.warning("media stream broke off", extra={"message_id": message_id, "code": error.code})
            raise


@router.get(
    "/api/messages/{message_id}/media",
    summary="The media of a message (image, audio, video, document, sticker), streamed",
    response_class=StreamingResponse,
    responses={**_MEDIA_RESPONSE, **api_problems(400, 404, 409, 422)},
)
async def get_message_media(
    message_id: MessageId, principal: MessagesReaderDep, clients: ClientsDep, response: Response
) -> StreamingResponse:
    message: messaging_pb2.Message = await clients.call(
        clients.messaging.GetMessage, messaging_pb2.GetMessageRequest(message_id=message_id), token=principal.token)
    ensure_visible(principal, message.tenant_id, what="message")
    media = message.media
    if not message.HasField("media") or not media.status:
        raise NotFound("this message has no media", code="MEDIA_NOT_FOUND")
    if media.status == MEDIA_PENDING:
        raise FailedPrecondition("the media is still being fetched from WhatsApp; try again shortly",
                                 code="MEDIA_NOT_READY")
    if media.status != MEDIA_READY:
        raise FailedPrecondition("the media could not be fetched from WhatsApp", code="MEDIA_FAILED")

    chunks = clients.stream(clients.messaging.GetMessageMedia,
                            messaging_pb2.GetMessageMediaRequest(message_id=message_id), token=principal.token)
    # The first chunk (with the metadata) is read before answering, so an upstream refusal is still a problem+json.
    first: messaging_pb2.MediaChunk = await anext(chunks, messaging_pb2.MediaChunk())
    content_type = media_type(first.mime_type or media.mime_type)
    headers = {
        "Content-Disposition": content_disposition(filename=first.filename or media.filename, mime_type=content_type),
        "Cache-Control": "private, no-store",
        **{name: value for name, value in response.headers.items() if name.startswith("ratelimit-")},
    }
    size = first.size or media.size
    if size > 0:
        headers["Content-Length"] = str(size)
    return StreamingResponse(_relay(first, chunks, message_id), media_type=content_type, headers=headers)


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=255,
    description="The same key and body within 24 hours answer the first message and send nothing again; the same "
                "key with another body is 422 IDEMPOTENCY_KEY_REUSED")]


@router.post(
    "/api/messages",
    summary="Answer a guest: any message type, stored PENDING and answered at once; the sender delivers it",
    status_code=201,
    description="Answered 201 with the stored message (status PENDING) before Meta is called; `message:new` and "
                "then `message:status` follow on the socket. A request repeated with the same `Idempotency-Key` and "
                "body within 24 hours gets the first answer again (with `Idempotent-Replayed: true`) and sends "
                "nothing; the same key with another body is 422 `IDEMPOTENCY_KEY_REUSED`.",
    responses=api_problems(400, 403, 404, 409, 413, 422),
)
async def send_message(
    body: SendMessageIn, principal: MessagesSenderDep, clients: ClientsDep, sends: SendAdmissionDep,
    response: Response, idempotency_key: IdempotencyKey = None,
) -> MessageOut:
    request = messaging_pb2.SendMessageRequest(
        conversation_id=body.conversation_id, type=body.type,
        content_json=json.dumps(body.content(), ensure_ascii=False) if body.content() is not None else "",
        reply_to_message_id=body.reply_to_message_id or "", idempotency_key=idempotency_key or "",
        priority=body.priority or "")
    async with sends.admitted():
        answer: messaging_pb2.SendMessageResponse = await clients.call(
            clients.messaging.SendMessage, request, token=principal.token)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return MessageOut.from_proto(answer.message)


@router.post(
    "/api/messages/{message_id}/retry",
    summary="Send a FAILED message again (a new attempt of the same message, never a copy)",
    responses=api_problems(400, 404, 422),
)
async def retry_message(message_id: MessageId, principal: MessagesSenderDep, clients: ClientsDep,
                        sends: SendAdmissionDep) -> MessageOut:
    async with sends.admitted():
        message: messaging_pb2.Message = await clients.call(
            clients.messaging.RetryMessage, messaging_pb2.RetryMessageRequest(message_id=message_id),
            token=principal.token)
    return MessageOut.from_proto(message)


@router.patch(
    "/api/messages/{message_id}/read",
    summary="Mark a guest's message (and the earlier ones of its conversation) read",
    responses=api_problems(400, 404),
)
async def read_message(message_id: MessageId, principal: MessagesSenderDep, clients: ClientsDep) -> ReadOut:
    read: messaging_pb2.MarkReadResponse = await clients.call(
        clients.messaging.MarkRead, messaging_pb2.MarkReadRequest(message_id=message_id), token=principal.token)
    return ReadOut.from_proto(read)


@router.post(
    "/api/conversations/{conversation_id}/read",
    summary="Mark every guest message of a conversation read",
    responses=api_problems(400, 404),
)
async def read_conversation(conversation_id: ConversationId, principal: MessagesSenderDep,
                            clients: ClientsDep) -> ReadOut:
    read: messaging_pb2.MarkReadResponse = await clients.call(
        clients.messaging.MarkRead, messaging_pb2.MarkReadRequest(conversation_id=conversation_id),
        token=principal.token)
    return ReadOut.from_proto(read)
