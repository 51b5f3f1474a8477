"""The `media` object kept on a media message: {status, mediaId, mimeType, sha256, size, filename, caption, error}.
`pending` when the message is stored, `ready` once the file is stored, `failed` (with the error) when the download
job gives up."""

from __future__ import annotations

from typing import Any

from messaging_service.content import MEDIA_TYPES

PENDING = "pending"
READY = "ready"
FAILED = "failed"


def initial(kind: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """The pending media of a newly received message (None for types without media)."""
    media_id = content.get("id")
    if kind not in MEDIA_TYPES or not isinstance(media_id, str) or not media_id:
        return None
    media: dict[str, Any] = {"status": PENDING, "mediaId": media_id}
    for key in ("mimeType", "sha256", "filename", "caption"):
        if isinstance(content.get(key), str):
            media[key] = content[key]
    return media


def media_id(media: dict[str, Any] | None) -> str | None:
    value = media.get("mediaId") if media else None
    return value if isinstance(value, str) and value else None


def ready(media: dict[str, Any], *, mime_type: str | None, sha256: str, size: int) -> dict[str, Any]:
    updated = {key: value for key, value in media.items() if key != "error"}
    updated.update(status=READY, sha256=sha256, size=size)
    if mime_type:
        updated["mimeType"] = mime_type
    return updated


def failed(media: dict[str, Any], *, error: str) -> dict[str, Any]:
    return {**media, "status": FAILED, "error": error}
