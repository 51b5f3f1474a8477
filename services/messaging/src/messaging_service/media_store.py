"""Where downloaded media lives. `MediaStore` is the port; `LocalMediaStore` keeps files under a root folder
(EVA_MEDIA_ROOT), one per tenant and message, written to a temporary file and renamed into place, so a reader never
sees a partial file. `S3MediaStore` (s3_media_store.py) is the S3-compatible one; EVA_MEDIA_STORE picks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

MEDIA_CHUNK_SIZE = 64 * 1024
_SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


class MediaIntegrityError(Exception):
    """The downloaded bytes do not match the sha256 Meta announced: nothing was stored."""


@dataclass(frozen=True, slots=True)
class StoredMedia:
    size: int
    sha256: str  # base64 of the SHA-256 digest, as Meta writes it


def sha256_matches(digest: bytes, expected: str) -> bool:
    """Meta's sha256 is documented as base64 of the digest; hex is accepted too."""
    expected = expected.strip()
    return expected in (base64.b64encode(digest).decode(), digest.hex(), base64.urlsafe_b64encode(digest).decode())


def _part(value: str) -> str:
    return value if _SAFE.match(value) else hashlib.sha256(value.encode()).hexdigest()


def valid_media_key(key: str) -> str:
    """The key itself, if every `/`-separated part is safe in a path and an object key (ValueError otherwise)."""
    parts = key.split("/")
    if not parts or any(not _SAFE.match(part) for part in parts):
        raise ValueError("invalid media key")
    return key


def media_key(*, tenant_id: str, message_id: uuid.UUID) -> str:
    """The object key of a message's media: `<tenant>/<message id>` (a tenant id unsafe in a path is hashed)."""
    return f"{_part(tenant_id)}/{message_id}"


class MediaStore(Protocol):
    async def put(self, key: str, chunks: AsyncIterable[bytes], *, expected_sha256: str | None) -> StoredMedia:
        """Stores the bytes under `key`, only if their sha256 matches `expected_sha256` (MediaIntegrityError)."""
        ...

    async def exists(self, key: str) -> bool: ...

    def read(self, key: str, *, chunk_size: int = MEDIA_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The stored bytes in chunks of `chunk_size` (the last one may be shorter)."""
        ...


class LocalMediaStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*valid_media_key(key).split("/"))

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, expected_sha256: str | None) -> StoredMedia:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        digest = hashlib.sha256()
        size = 0
        handle: BinaryIO = await asyncio.to_thread(temporary.open, "wb")
        try:
            try:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            finally:
                await asyncio.to_thread(handle.close)
            if expected_sha256 and not sha256_matches(digest.digest(), expected_sha256):
                raise MediaIntegrityError("sha256 mismatch: the downloaded media is not what Meta announced")
            await asyncio.to_thread(os.replace, temporary, path)
        finally:
            await asyncio.to_thread(temporary.unlink, missing_ok=True)
        return StoredMedia(size=size, sha256=base64.b64encode(digest.digest()).decode())

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def read(self, key: str, *, chunk_size: int = MEDIA_CHUNK_SIZE) -> AsyncIterator[bytes]:
        handle: BinaryIO = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)
