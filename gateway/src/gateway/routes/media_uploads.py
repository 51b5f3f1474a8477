"""POST /api/media (MessagingService.UploadMedia): a file to send later as an image, audio, video, document or
sticker. The multipart body is spooled by the server (in memory up to 1 MiB, then a temporary file), and streamed
to the messaging service in 64 KiB chunks; the service checks WhatsApp's types and sizes for the kind. Users, and
API keys with `messages:send`. The API's body limit is raised for this route only (middleware.ROUTE_BODY_LIMITS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from eva.messaging.v1 import messaging_pb2
from eva_common.auth import Principal
from eva_common.identity import SCOPE_MESSAGES_SEND
from fastapi import APIRouter, Depends, File, Form, UploadFile

from gateway.auth import api_key_access
from gateway.deps import ClientsDep
from gateway.problems import api_problems
from gateway.schemas.media_uploads import MediaKind, UploadedMediaOut

router = APIRouter(tags=["media"])

UPLOAD_CHUNK_SIZE = 64 * 1024
MessagesSenderDep = Annotated[Principal, Depends(api_key_access(SCOPE_MESSAGES_SEND))]


async def upload_chunks(file: UploadFile, *, kind: str,
                        chunk_size: int = UPLOAD_CHUNK_SIZE) -> AsyncIterator[messaging_pb2.UploadMediaChunk]:
    """The file in chunks of `chunk_size`, read as the call sends them; the first carries the metadata."""
    first: messaging_pb2.UploadMediaChunk | None = messaging_pb2.UploadMediaChunk(
        mime_type=file.content_type or "", filename=file.filename or "", kind=kind)
    while data := await file.read(chunk_size):
        if first is not None:
            first.data = data
            yield first
            first = None
        else:
            yield messaging_pb2.UploadMediaChunk(data=data)
    if first is not None:  # an empty file: the service answers EMPTY_MEDIA
        yield first


@router.post(
    "/api/media",
    status_code=201,
    summary="Upload a file to send as an image, audio, video, document or sticker",
    description=(
        "multipart/form-data with `file` (its Content-Type is the media's MIME type) and optionally `type`; "
        "without `type` it is inferred from the MIME type (WebP: sticker; image/*, audio/*, video/*; else "
        "document). WhatsApp's limits: image jpeg/png 5 MB; audio aac/amr/mpeg/mp4/ogg 16 MB; video mp4/3gpp "
        "16 MB; document txt/pdf/doc(x)/xls(x)/ppt(x) 100 MB; sticker webp 500 KB (400 MEDIA_TYPE_NOT_ALLOWED, "
        "MEDIA_TOO_LARGE, EMPTY_MEDIA). Send it with `<type>.mediaId` in POST /api/messages."
    ),
    responses=api_problems(400, 413),
)
async def upload_media(
    principal: MessagesSenderDep,
    clients: ClientsDep,
    file: Annotated[UploadFile, File(description="The file; its part's Content-Type is the media's MIME type")],
    kind: Annotated[MediaKind | None, Form(alias="type", description="What it will be sent as")] = None,
) -> UploadedMediaOut:
    try:
        uploaded: messaging_pb2.UploadedMedia = await clients.upload(
            clients.messaging.UploadMedia, upload_chunks(file, kind=kind or ""), token=principal.token)
    finally:
        await file.close()
    return UploadedMediaOut.from_proto(uploaded)
