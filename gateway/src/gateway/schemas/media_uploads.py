"""POST /api/media: a file stored for sending, as the API shows it."""

from __future__ import annotations

from typing import Literal

from eva.messaging.v1 import messaging_pb2
from pydantic import Field

from gateway.schemas.base import CamelModel, optional

# What a file is sent as (WhatsApp's media message types); each has its own MIME types and size limit.
MediaKind = Literal["image", "audio", "video", "document", "sticker"]


class UploadedMediaOut(CamelModel):
    id: str = Field(description="The upload's id: a message sends it as `<type>.mediaId`")
    mime_type: str
    size: int = Field(description="Bytes")
    filename: str | None
    sha256: str = Field(description="Base64 of the file's SHA-256 digest")
    kind: MediaKind | str
    created_at: str | None

    @classmethod
    def from_proto(cls, media: messaging_pb2.UploadedMedia) -> UploadedMediaOut:
        return cls(id=media.id, mime_type=media.mime_type, size=media.size, filename=optional(media.filename),
                   sha256=media.sha256, kind=media.kind, created_at=optional(media.created_at))
