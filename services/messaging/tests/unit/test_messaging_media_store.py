"""LocalMediaStore: written through a temporary file and renamed, refused on a sha256 mismatch (nothing left
behind), read back in chunks; keys cannot escape the root."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from messaging_service.media_store import LocalMediaStore, MediaIntegrityError, media_key, sha256_matches


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_a_matching_file_is_stored_and_read_back_in_chunks(tmp_path: Path) -> None:
    store, message_id = LocalMediaStore(tmp_path), uuid.uuid4()
    key = media_key(tenant_id="tenant-a", message_id=message_id)
    data = b"x" * 10 + b"y" * 7
    stored = await store.put(key, pieces(data[:5], data[5:]), expected_sha256=b64(data))
    assert (stored.size, stored.sha256) == (len(data), b64(data))
    assert (tmp_path / "tenant-a" / str(message_id)).read_bytes() == data
    assert [len(chunk) async for chunk in store.read(key, chunk_size=8)] == [8, 8, 1]
    assert await store.exists(key)


async def test_a_mismatching_file_is_never_stored(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    key = media_key(tenant_id="tenant-a", message_id=uuid.uuid4())
    with pytest.raises(MediaIntegrityError):
        await store.put(key, pieces(b"tampered"), expected_sha256=b64(b"original"))
    assert not await store.exists(key)
    assert list((tmp_path / "tenant-a").iterdir()) == []  # the temporary file is gone too


def test_metas_base64_and_hex_digests_are_both_accepted() -> None:
    digest = hashlib.sha256(b"media").digest()
    assert sha256_matches(digest, base64.b64encode(digest).decode())
    assert sha256_matches(digest, digest.hex())
    assert not sha256_matches(digest, base64.b64encode(hashlib.sha256(b"other").digest()).decode())


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    message_id = uuid.uuid4()
    key = media_key(tenant_id="../../etc", message_id=message_id)
    assert ".." not in key and key.endswith(str(message_id))
    with pytest.raises(ValueError):
        LocalMediaStore(tmp_path)._path("../outside")
