"""Media like the Graph API (reference §6): upload, URL look-up, download with a bearer token, delete.

- ``POST /v21.0/{phone_number_id}/media`` (multipart: ``file``, ``messaging_product=whatsapp``, ``type``) → ``{id}``
- ``GET /v21.0/{media_id}[?phone_number_id=]`` → ``{messaging_product, url, mime_type, sha256, file_size, id}``;
  ``sha256`` is the base64 of the SHA-256 digest and ``file_size`` a string, as Meta shows them; ``url`` is a
  download URL on this simulator valid for 5 minutes (``?mid=…&ext=<unix expiry>&hash=…``)
- ``GET <url>`` needs ``Authorization: Bearer <the owning number's token>`` (401 without or with another token),
  404 once expired, with a bad hash or for deleted media
- ``DELETE /v21.0/{media_id}[?phone_number_id=]`` → ``{"success": true}``
- control: ``POST /_sim/media`` stores media for a number (given bytes or random ones) → ``{id, sha256}``;
  ``POST /_sim/media/{id}/corrupt {"corrupt": true|false}`` makes downloads serve altered bytes (sha256 mismatch).
"""

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from eva_simulator import payloads
from eva_simulator.errors import (
    GraphError,
    expired_token,
    invalid_parameter,
    missing_parameter,
    unknown_object,
)
from eva_simulator.graph import VERSION_PATTERN, authenticate, error_response, graph_response
from eva_simulator.multipart import MultipartError, parse_form
from eva_simulator.runtime import Simulator, SimulatorDep
from eva_simulator.send_checks import MAX_UPLOAD_BYTES, bare_mime, media_kind
from eva_simulator.state import StoredMedia

logger = logging.getLogger("eva_simulator.media")

graph_router = APIRouter(tags=["graph media"])
download_router = APIRouter(tags=["graph media"])
control_router = APIRouter(prefix="/_sim", tags=["simulator"])

URL_LIFETIME_SECONDS = 5 * 60
MAX_MEDIA_BYTES = 64 * 1024 * 1024  # media stored through the control API (kept in memory)
MAX_UPLOAD_BODY = MAX_UPLOAD_BYTES + 1024 * 1024  # a 100 MB document plus the multipart envelope
DOWNLOAD_PATH = "/whatsapp_business/attachments/"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


def media_sha256(data: bytes) -> str:
    """Meta's ``sha256`` of a media object: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def store_media(
    sim: Simulator, *, phone_number_id: str, mime_type: str, data: bytes, filename: str | None = None
) -> StoredMedia:
    return sim.state.add_media(
        StoredMedia(
            media_id=payloads.new_media_id(),
            phone_number_id=phone_number_id,
            mime_type=mime_type,
            data=data,
            sha256=media_sha256(data),
            filename=filename,
        )
    )


def _url_hash(sim: Simulator, media_id: str, expiry: int) -> str:
    digest = hmac.new(sim.state.media_url_key, f"{media_id}.{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def download_url(sim: Simulator, request: Request, media: StoredMedia) -> str:
    expiry = int(sim.state.clock()) + URL_LIFETIME_SECONDS
    base = str(request.base_url).rstrip("/")
    return f"{base}{DOWNLOAD_PATH}?mid={media.media_id}&ext={expiry}&hash={_url_hash(sim, media.media_id, expiry)}"


# --- Graph API -------------------------------------------------------------------------------------------


def _check_version(version: str, path: str) -> None:
    if not VERSION_PATTERN.match(version):
        raise GraphError(http_status=400, code=2500, message=f"Unknown path components: /{version}/{path}")


def _token(request: Request, sim: Simulator) -> str:
    return authenticate(request, sim)


def _owned_media(request: Request, sim: Simulator, media_id: str, method: str) -> StoredMedia:
    token = _token(request, sim)
    media = sim.state.get_media(media_id)
    owner = sim.state.get_number(media.phone_number_id) if media is not None else None
    if media is None or owner is None or owner.access_token != token:
        raise unknown_object(media_id, method=method)
    wanted = request.query_params.get("phone_number_id")
    if wanted is not None and wanted != media.phone_number_id:
        raise unknown_object(media_id, method=method)
    return media


def _shown(version: str) -> str:
    return version if VERSION_PATTERN.match(version) else "v21.0"


@graph_router.post("/{version}/{phone_number_id}/media")
async def upload_media(version: str, phone_number_id: str, request: Request, sim: SimulatorDep) -> Response:
    try:
        _check_version(version, f"{phone_number_id}/media")
        token = _token(request, sim)
        number = sim.state.get_number(phone_number_id)
        if number is None or number.access_token != token:
            raise unknown_object(phone_number_id)
        body = await request.body()
        if len(body) > MAX_UPLOAD_BODY:
            raise invalid_parameter(f"The file exceeds the maximum size of {MAX_UPLOAD_BYTES} bytes.")
        try:
            form = parse_form(request.headers.get("content-type", ""), body)
        except MultipartError as error:
            raise invalid_parameter(f"Upload must be multipart/form-data: {error}") from None
        product = form.get("messaging_product")
        if product is None:
            raise missing_parameter("messaging_product")
        if product.text() != "whatsapp":
            raise invalid_parameter("messaging_product must be 'whatsapp'.")
        file = form.get("file")
        if file is None or file.filename is None:
            raise missing_parameter("file")
        declared = form.get("type")
        mime_type = (declared.text().strip() if declared is not None else "") or file.content_type
        if not mime_type or "/" not in mime_type:
            raise missing_parameter("type")
        check_upload(mime_type, len(file.data))
        media = store_media(
            sim, phone_number_id=phone_number_id, mime_type=mime_type, data=file.data, filename=file.filename
        )
    except GraphError as error:
        return error_response(error, version=_shown(version))
    logger.info(
        "media uploaded",
        extra={
            "fields": {
                "event": "media_uploaded",
                "phoneNumberId": phone_number_id,
                "mediaId": media.media_id,
                "bytes": len(media.data),
            }
        },
    )
    return graph_response({"id": media.media_id}, version=_shown(version))


def check_upload(mime_type: str, size: int) -> None:
    """Meta's media types and size limits (reference §6): 100 otherwise."""
    kind = media_kind(mime_type)
    if kind is None:
        raise invalid_parameter(
            f"Param file must be a file with one of the supported types, got {bare_mime(mime_type)}."
        )
    if size > kind.max_bytes:
        raise invalid_parameter(
            f"Param file is too large: {kind.name} files of type {bare_mime(mime_type)} may be at most "
            f"{kind.max_bytes} bytes, got {size}."
        )


@graph_router.get("/{version}/{media_id}")
async def get_media(version: str, media_id: str, request: Request, sim: SimulatorDep) -> Response:
    try:
        _check_version(version, media_id)
        media = _owned_media(request, sim, media_id, "get")
    except GraphError as error:
        return error_response(error, version=_shown(version))
    return graph_response(
        {
            "messaging_product": "whatsapp",
            "url": download_url(sim, request, media),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": str(len(media.data)),
            "id": media.media_id,
        },
        version=_shown(version),
    )


@graph_router.delete("/{version}/{media_id}")
async def delete_media(version: str, media_id: str, request: Request, sim: SimulatorDep) -> Response:
    try:
        _check_version(version, media_id)
        media = _owned_media(request, sim, media_id, "delete")
    except GraphError as error:
        return error_response(error, version=_shown(version))
    sim.state.delete_media(media.media_id)
    return graph_response({"success": True}, version=_shown(version))


@download_router.get(DOWNLOAD_PATH)
async def download(request: Request, sim: SimulatorDep) -> Response:
    """The media bytes behind a URL from ``GET /{media_id}``: bearer token of the owning number required."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _download_error(401, "An access token is required to download media.")
    params = request.query_params
    media_id, ext, given = params.get("mid", ""), params.get("ext", ""), params.get("hash", "")
    media = sim.state.get_media(media_id)
    if not ext.isdigit() or not hmac.compare_digest(given.encode(), _url_hash(sim, media_id, int(ext)).encode()):
        return _download_error(404, "Not Found")
    if int(ext) < sim.state.clock() or media is None:
        return _download_error(404, "Not Found")
    owner = sim.state.get_number(media.phone_number_id)
    if owner is None or not hmac.compare_digest(owner.access_token.encode(), token.strip().encode()):
        return _download_error(401, "The access token cannot download this media.")
    if owner.token_expired_at is not None:
        return error_response(expired_token(expired_at=owner.token_expired_at, now=sim.state.clock()))
    data = media.served_bytes()
    return Response(content=data, media_type=media.mime_type, headers={"content-length": str(len(data))})


def _download_error(status: int, message: str) -> Response:
    return graph_response({"error": {"message": message, "code": 190 if status == 401 else 100}}, status_code=status)


# --- control API ----------------------------------------------------------------------------------------


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MediaIn(_CamelModel):
    """Store media for a number: ``contentBase64`` bytes, or ``sizeBytes`` random ones."""

    phone_number_id: str = Field(min_length=1)
    mime_type: str = Field(pattern=r"^[\w.+-]+/[\w.+-]+$")
    filename: str | None = None
    content_base64: str | None = Field(default=None, repr=False)
    size_bytes: int | None = Field(default=None, ge=0, le=MAX_MEDIA_BYTES)

    @model_validator(mode="after")
    def _one_content(self) -> "MediaIn":
        if (self.content_base64 is None) == (self.size_bytes is None):
            raise ValueError("give either 'contentBase64' or 'sizeBytes'")
        return self


class CorruptIn(_CamelModel):
    corrupt: bool = True


@control_router.post("/media")
async def add_media(body: MediaIn, sim: SimulatorDep) -> dict[str, Any]:
    if sim.state.get_number(body.phone_number_id) is None:
        raise HTTPException(404, detail=f"unknown phoneNumberId {body.phone_number_id}")
    if body.content_base64 is not None:
        try:
            data = base64.b64decode(body.content_base64, validate=True)
        except ValueError:
            raise HTTPException(422, detail="contentBase64 is not base64") from None
        if len(data) > MAX_MEDIA_BYTES:
            raise HTTPException(413, detail=f"media over {MAX_MEDIA_BYTES} bytes")
    else:
        data = secrets.token_bytes(body.size_bytes or 0)
    media = store_media(
        sim, phone_number_id=body.phone_number_id, mime_type=body.mime_type, data=data, filename=body.filename
    )
    return {"id": media.media_id, "sha256": media.sha256, "fileSize": len(media.data), "mimeType": media.mime_type}


@control_router.post("/media/{media_id}/corrupt")
async def corrupt_media(media_id: str, body: CorruptIn, sim: SimulatorDep) -> dict[str, Any]:
    media = sim.state.get_media(media_id)
    if media is None:
        raise HTTPException(404, detail=f"unknown media {media_id}")
    media.corrupt = body.corrupt
    return {"id": media.media_id, "corrupt": media.corrupt}


def guest_media_content(
    sim: Simulator, *, phone_number_id: str, message_type: str, content: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Meta's media object for a guest message whose content names stored media (``{"mediaId", caption?,
    filename?, voice?, animated?}``); any other content is passed on as given."""
    if message_type not in MEDIA_TYPES or content is None or "mediaId" not in content:
        return content
    media = sim.state.get_media(str(content["mediaId"]))
    if media is None:
        raise HTTPException(404, detail=f"unknown media {content['mediaId']}")
    if media.phone_number_id != phone_number_id:
        raise HTTPException(422, detail="the media belongs to another phone number")
    extra: dict[str, Any] = {}
    if message_type == "audio" and "voice" in content:
        extra["voice"] = bool(content["voice"])
    if message_type == "sticker" and "animated" in content:
        extra["animated"] = bool(content["animated"])
    filename = content.get("filename", media.filename) if message_type == "document" else None
    caption = content.get("caption") if message_type in ("image", "video", "document") else None
    return payloads.media_content(
        mime_type=media.mime_type,
        sha256=media.sha256,
        media_id=media.media_id,
        caption=caption,
        filename=filename,
        **extra,
    )
