"""How a message's media is handed to the browser: its Content-Type, Content-Length and Content-Disposition
(pure functions; the route streams the bytes)."""

from __future__ import annotations

from urllib.parse import quote

DEFAULT_MEDIA_TYPE = "application/octet-stream"
# Shown in the browser when they have no filename; anything else (documents, SVG, HTML, ...) is downloaded.
_INLINE_PREFIXES = ("image/", "audio/", "video/")
_NEVER_INLINE = frozenset({"image/svg+xml"})
_UNSAFE_IN_FILENAME = frozenset('"\\/;')


def media_type(mime_type: str) -> str:
    """The Content-Type to send: the stored MIME type without parameters or control characters, else octet-stream."""
    value = mime_type.split(";", 1)[0].strip().lower()
    if not value or "/" not in value or not all(ch.isascii() and ch.isprintable() and ch != " " for ch in value):
        return DEFAULT_MEDIA_TYPE
    return value


def safe_filename(filename: str) -> str:
    """The filename without paths, quotes, separators or control characters (what Content-Disposition may carry)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable() and ch not in _UNSAFE_IN_FILENAME).strip()[:255]


def content_disposition(*, filename: str, mime_type: str) -> str:
    """`attachment` with the filename (RFC 6266: an ASCII `filename` and a UTF-8 `filename*`) for media that has one
    (documents); `inline` for pictures, audio and video without one; `attachment` for anything else."""
    name = safe_filename(filename)
    if not name:
        return "inline" if mime_type.startswith(_INLINE_PREFIXES) and mime_type not in _NEVER_INLINE else "attachment"
    ascii_name = name.encode("ascii", "ignore").decode() or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
