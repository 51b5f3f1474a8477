"""Media uploads for sending (POST /api/media → UploadMedia): a file checked against Meta's types and sizes for the
kind it will be sent as (reference §6), streamed into the MediaStore under `uploads/<tenant>/<upload id>` while its
SHA-256 is computed (never held whole in memory: the local store writes a temporary file, the S3 store spools), and
recorded in `media_uploads`. When a message first sends it, `ensure_uploaded_to_meta` uploads it to the Graph API
(`POST {graph}/{version}/{phone_number_id}/media`, multipart) and remembers Meta's media id for that number; Meta
keeps an upload 30 days, so an id younger than 29 days is reused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import InvalidArgument, NotFound
from eva_common.identity import SCOPE_MESSAGES_SEND
from eva_common.ids import new_id, parse_id
from sqlmodel import col, select

from messaging_service.graph_errors import GraphError, graph_answer
from messaging_service.media_store import MEDIA_CHUNK_SIZE, MediaStore, media_key
from messaging_service.models import MediaUpload

SEND_SCOPE = SCOPE_MESSAGES_SEND  # what an API key needs to upload media for sending
MB = 1024 * 1024
KB = 1024
# Meta keeps uploaded media 30 days (reference §6): a day of margin before the id is refreshed.
META_MEDIA_REUSE = timedelta(days=29)


@dataclass(frozen=True, slots=True)
class MediaRule:
    mime_types: tuple[str, ...]
    max_bytes: int


# What WhatsApp accepts for each kind (reference §6). Stickers: animated WebP up to 500 KB (static ones 100 KB).
MEDIA_RULES: dict[str, MediaRule] = {
    "image": MediaRule(("image/jpeg", "image/png"), 5 * MB),
    "audio": MediaRule(("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), 16 * MB),
    "video": MediaRule(("video/mp4", "video/3gpp"), 16 * MB),
    "document": MediaRule((
        "text/plain", "application/pdf", "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"), 100 * MB),
    "sticker": MediaRule(("image/webp",), 500 * KB),
}
MAX_UPLOAD_BYTES = max(rule.max_bytes for rule in MEDIA_RULES.values())
FILENAME_MAX = 255


def base_mime_type(mime_type: str) -> str:
    """The MIME type without parameters, lower case (`audio/ogg; codecs=opus` → `audio/ogg`)."""
    return mime_type.split(";", 1)[0].strip().lower()


def kind_for(mime_type: str) -> str:
    """The kind a file is sent as when the caller does not say: WebP is a sticker, other pictures images, audio
    audio, video video, anything else a document."""
    base = base_mime_type(mime_type)
    if base == "image/webp":
        return "sticker"
    major = base.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "document"


def check_media(*, kind: str, mime_type: str) -> tuple[str, str, MediaRule]:
    """(kind, MIME type, its rule) when WhatsApp accepts the type for the kind; InvalidArgument otherwise."""
    base = base_mime_type(mime_type)
    if not base or "/" not in base:
        raise InvalidArgument("the file's MIME type is required (e.g. image/jpeg)", code="MEDIA_TYPE_NOT_ALLOWED")
    chosen = kind or kind_for(base)
    rule = MEDIA_RULES.get(chosen)
    if rule is None:
        raise InvalidArgument(f"type must be one of {sorted(MEDIA_RULES)} (got {chosen!r})",
                              code="VALIDATION_FAILED")
    if base not in rule.mime_types:
        raise InvalidArgument(f"WhatsApp does not send {base} as {chosen}: allowed are {', '.join(rule.mime_types)}",
                              code="MEDIA_TYPE_NOT_ALLOWED")
    return chosen, base, rule


def clean_filename(filename: str) -> str | None:
    """The filename without folders or control characters, at most 255 characters; None when nothing is left."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in base if ch.isprintable()).strip()[:FILENAME_MAX]
    return name or None


def upload_key(*, tenant_id: str, upload_id: uuid.UUID) -> str:
    """Where an upload's bytes live in the MediaStore: `uploads/<tenant>/<upload id>`."""
    return f"uploads/{media_key(tenant_id=tenant_id, message_id=upload_id)}"


@dataclass(frozen=True, slots=True)
class UploadHeader:
    """What the first chunk says about the file."""

    mime_type: str
    filename: str = ""
    kind: str = ""  # empty: inferred from the MIME type
    tenant_id: str = ""  # honoured for service principals only


class MediaUploads:
    def __init__(self, *, sessions: SessionFactory, store: MediaStore) -> None:
        self._sessions = sessions
        self._store = store

    async def upload(self, *, principal: Principal, header: UploadHeader,
                     chunks: AsyncIterator[bytes]) -> MediaUpload:
        """Checks the type (before any byte is read) and the size (while the bytes stream: the store never keeps a
        file over the kind's limit), stores the bytes and records the upload."""
        tenant = principal.tenant_scope(header.tenant_id)
        principal.require_scope(SEND_SCOPE)
        kind, mime_type, rule = check_media(kind=header.kind, mime_type=header.mime_type)
        upload_id = new_id()

        async def limited() -> AsyncIterator[bytes]:
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > rule.max_bytes:
                    raise InvalidArgument(f"the file is larger than WhatsApp's {rule.max_bytes:,} bytes for {kind}",
                                          code="MEDIA_TOO_LARGE")
                yield chunk
            if size == 0:
                raise InvalidArgument("the file is empty", code="EMPTY_MEDIA")

        stored = await self._store.put(upload_key(tenant_id=tenant, upload_id=upload_id), limited(),
                                       expected_sha256=None)
        row = MediaUpload(id=upload_id, tenant_id=tenant, kind=kind, mime_type=mime_type, size=stored.size,
                          sha256=stored.sha256, filename=clean_filename(header.filename))
        async with transaction(self._sessions, tenant_id=tenant) as session:
            session.add(row)
            await session.flush()
            await session.refresh(row)
        return row

    async def get(self, *, tenant_id: str, upload_id: str) -> MediaUpload:
        """One upload of the tenant (for the sender); NotFound `MEDIA_NOT_FOUND` otherwise."""
        key = parse_id(upload_id)
        if key is not None:
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                row = (await session.exec(select(MediaUpload).where(
                    col(MediaUpload.tenant_id) == tenant_id, col(MediaUpload.id) == key))).first()
            if row is not None:
                return row
        raise NotFound("media upload not found", code="MEDIA_NOT_FOUND")


# ------------------------------------------------------------------ Graph API upload


def _multipart(boundary: str, *, mime_type: str, filename: str) -> tuple[bytes, bytes]:
    """The bytes before and after the file of Meta's upload form (messaging_product, type, file)."""
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="messaging_product"\r\n\r\nwhatsapp\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n{mime_type}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        f"Content-Type: {mime_type}\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def _fresh(upload: MediaUpload, phone_number_id: str, now: datetime) -> bool:
    return (upload.meta_media_id is not None and upload.meta_phone_number_id == phone_number_id
            and upload.meta_uploaded_at is not None and now - upload.meta_uploaded_at < META_MEDIA_REUSE)


async def ensure_uploaded_to_meta(
    sessions: SessionFactory, upload: MediaUpload, *, phone_number_id: str, access_token: str,
    http: httpx.AsyncClient, graph_url: str, api_version: str, store: MediaStore,
) -> str:
    """Meta's media id of the upload for the sending number: the recorded one while younger than 29 days and of
    the same number, else the file is streamed from the store to `POST {graph}/{version}/{phone_number_id}/media`
    (multipart: messaging_product, type, file) and the new id recorded. GraphError when the Graph API refuses
    (Meta's code, message and details) or cannot be reached (no code, HTTP 503: retry)."""
    now = datetime.now(UTC)
    if _fresh(upload, phone_number_id, now):
        assert upload.meta_media_id is not None
        return upload.meta_media_id
    boundary = f"eva-{uuid.uuid4().hex}"
    filename = upload.filename or f"{upload.id}"
    head, tail = _multipart(boundary, mime_type=upload.mime_type, filename=filename)
    key = upload_key(tenant_id=upload.tenant_id, upload_id=upload.id)

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in store.read(key, chunk_size=MEDIA_CHUNK_SIZE):
            yield chunk
        yield tail

    url = f"{graph_url.rstrip('/')}/{api_version}/{phone_number_id}/media"
    headers = {"Authorization": f"Bearer {access_token}",
               "Content-Type": f"multipart/form-data; boundary={boundary}",
               "Content-Length": str(len(head) + upload.size + len(tail))}
    try:
        response = await http.post(url, content=body(), headers=headers)
    except httpx.HTTPError as error:  # an upload sent twice only costs a second copy at Meta: retry
        raise GraphError(code=None, subcode=None, message=f"the media upload to the Graph API failed: {error!r}",
                         details=None, http_status=503) from error
    payload = graph_answer(response)
    media_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(media_id, str) or not media_id:
        raise GraphError(code=None, subcode=None, message="the Graph API accepted the upload without a media id",
                         details=None, http_status=response.status_code)
    async with transaction(sessions, tenant_id=upload.tenant_id) as session:
        await session.exec(
            sa.update(MediaUpload)
            .where(col(MediaUpload.tenant_id) == upload.tenant_id, col(MediaUpload.id) == upload.id)
            .values(meta_media_id=media_id, meta_phone_number_id=phone_number_id, meta_uploaded_at=now,
                    updated_at=now))
    return media_id
