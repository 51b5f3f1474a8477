"""S3MediaStore against a real S3-compatible server (MinIO, scripts/s3_server.py): the LocalMediaStore semantics —
verified before anything is visible, read back in chunks — with PutObject below the multipart threshold, a multipart
upload above it (aborted on failure: no dangling upload), the key prefix, readiness (HeadBucket) and clear errors for
bad credentials or a missing bucket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from messaging_service.media_store import MediaIntegrityError, media_key
from messaging_service.s3_media_store import MIB, S3Config, S3MediaStore, S3MediaStoreError
from pydantic import SecretStr

# The first test may wait for the one-time MinIO build (scripts/s3_server.py install).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

OpenClient = Callable[..., contextlib.AbstractAsyncContextManager[Any]]


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def config(s3_server: Any, s3_bucket: str) -> Callable[..., S3Config]:
    def make(**overrides: Any) -> S3Config:
        options: dict[str, Any] = {
            "bucket": s3_bucket, "endpoint_url": s3_server.endpoint_url, "region": s3_server.region,
            "access_key_id": s3_server.access_key, "secret_access_key": SecretStr(s3_server.secret_key),
            "path_style": True} | overrides
        return S3Config(**options)

    return make


@contextlib.asynccontextmanager
async def opened(config: S3Config) -> AsyncIterator[S3MediaStore]:
    store = S3MediaStore(config)
    try:
        yield store
    finally:
        await store.close()


async def uploads_in_progress(s3_client: OpenClient, bucket: str) -> list[Any]:
    async with s3_client() as client:
        answer = await client.list_multipart_uploads(Bucket=bucket)
    return list(answer.get("Uploads", []))


async def keys_under(s3_client: OpenClient, bucket: str, prefix: str) -> list[str]:
    async with s3_client() as client:
        answer = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in answer.get("Contents", [])]


async def test_a_matching_file_is_stored_and_read_back_in_chunks(config, s3_client, s3_bucket) -> None:
    key = media_key(tenant_id="tenant-a", message_id=uuid.uuid4())
    data = b"x" * 10 + b"y" * 7
    async with opened(config()) as store:
        stored = await store.put(key, pieces(data, 5), expected_sha256=b64(data))
        assert (stored.size, stored.sha256) == (len(data), b64(data))
        assert [len(chunk) async for chunk in store.read(key, chunk_size=8)] == [8, 8, 1]
        assert b"".join([chunk async for chunk in store.read(key)]) == data
        assert await store.exists(key)
    async with s3_client() as client:
        head = await client.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["Metadata"]["sha256"] == b64(data) and head["ChecksumSHA256"] == b64(data)


async def test_meta_hex_digests_are_accepted_and_no_expected_digest_stores_as_is(config) -> None:
    key, other = (media_key(tenant_id="tenant-a", message_id=uuid.uuid4()) for _ in range(2))
    async with opened(config()) as store:
        await store.put(key, pieces(b"hex", 2), expected_sha256=hashlib.sha256(b"hex").hexdigest())
        stored = await store.put(other, pieces(b"", 1), expected_sha256=None)
        assert stored.size == 0 and await store.exists(other)
        assert [chunk async for chunk in store.read(other)] == []
        assert b"".join([chunk async for chunk in store.read(key)]) == b"hex"


async def test_a_mismatching_file_is_never_stored(config, s3_client, s3_bucket) -> None:
    small, large = (media_key(tenant_id="tenant-m", message_id=uuid.uuid4()) for _ in range(2))
    async with opened(config(multipart_threshold=5 * MIB, part_size=5 * MIB)) as store:
        with pytest.raises(MediaIntegrityError):
            await store.put(small, pieces(b"tampered", 3), expected_sha256=b64(b"original"))
        with pytest.raises(MediaIntegrityError):  # above the multipart threshold: refused before any upload
            await store.put(large, pieces(os.urandom(6 * MIB), MIB), expected_sha256=b64(b"original"))
        assert not await store.exists(small) and not await store.exists(large)
    assert await keys_under(s3_client, s3_bucket, "tenant-m/") == []
    assert await uploads_in_progress(s3_client, s3_bucket) == []


async def test_a_large_file_goes_up_in_parts_and_round_trips(config, s3_client, s3_bucket) -> None:
    key = media_key(tenant_id="tenant-l", message_id=uuid.uuid4())
    data = os.urandom(12 * MIB)
    async with opened(config(multipart_threshold=5 * MIB, part_size=5 * MIB)) as store:
        stored = await store.put(key, pieces(data, 64 * 1024 + 3), expected_sha256=b64(data))
        assert (stored.size, stored.sha256) == (len(data), b64(data))
        sizes, digest = [], hashlib.sha256()
        async for chunk in store.read(key):
            sizes.append(len(chunk))
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(data).digest()
    assert set(sizes[:-1]) == {64 * 1024} and sum(sizes) == len(data)
    async with s3_client() as client:
        head = await client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 2 MiB
    assert head["ContentLength"] == len(data) and head["Metadata"]["sha256"] == b64(data)
    assert await uploads_in_progress(s3_client, s3_bucket) == []


async def test_a_failed_multipart_upload_is_aborted(config, s3_client, s3_bucket) -> None:
    """Parts of 1 MiB upload fine, but S3 refuses to complete an upload whose parts (but the last) are under
    5 MiB: the store aborts it, so neither the object nor a dangling upload remains."""
    key = media_key(tenant_id="tenant-f", message_id=uuid.uuid4())
    data = os.urandom(3 * MIB)
    async with opened(config(multipart_threshold=MIB, part_size=MIB)) as store:
        with pytest.raises(S3MediaStoreError, match="CompleteMultipartUpload.*EntityTooSmall"):
            await store.put(key, pieces(data, MIB), expected_sha256=b64(data))
        assert not await store.exists(key)
    assert await uploads_in_progress(s3_client, s3_bucket) == []


async def test_exists_is_false_for_a_missing_key_and_reading_it_fails_clearly(config) -> None:
    key = media_key(tenant_id="tenant-a", message_id=uuid.uuid4())
    async with opened(config()) as store:
        assert not await store.exists(key)
        with pytest.raises(S3MediaStoreError, match="GetObject.*NoSuchKey"):
            [chunk async for chunk in store.read(key)]


async def test_the_prefix_is_prepended_to_every_key(config, s3_client, s3_bucket) -> None:
    key = media_key(tenant_id="tenant-p", message_id=uuid.uuid4())
    async with opened(config(prefix="/eva/media/")) as store, opened(config()) as unprefixed:
        await store.put(key, pieces(b"prefixed", 4), expected_sha256=b64(b"prefixed"))
        assert store.object_key(key) == f"eva/media/{key}"
        assert await store.exists(key) and not await unprefixed.exists(key)
        assert await unprefixed.exists(f"eva/media/{key}")
    assert await keys_under(s3_client, s3_bucket, "eva/media/tenant-p/") == [f"eva/media/{key}"]
    assert await keys_under(s3_client, s3_bucket, "tenant-p/") == []


async def test_keys_are_validated(config) -> None:
    async with opened(config()) as store:
        with pytest.raises(ValueError):
            store.object_key("../outside")
        with pytest.raises(ValueError):
            await store.exists("tenant//x")


async def test_a_wrong_secret_is_a_clear_error_not_a_hang(config, caplog: pytest.LogCaptureFixture) -> None:
    key = media_key(tenant_id="tenant-a", message_id=uuid.uuid4())
    async with opened(config(secret_access_key=SecretStr("not-the-secret-" + uuid.uuid4().hex))) as store:
        async with asyncio.timeout(20):
            with pytest.raises(S3MediaStoreError, match="PutObject.*SignatureDoesNotMatch.*HTTP 403"):
                await store.put(key, pieces(b"data", 2), expected_sha256=b64(b"data"))
            with pytest.raises(S3MediaStoreError, match="HeadObject.*403"):
                await store.exists(key)
            with caplog.at_level(logging.WARNING, logger="messaging_service.s3_media_store"):
                assert not await store.ready()
    assert "credentials were refused" in caplog.text and "not-the-secret" not in caplog.text


async def test_an_unknown_access_key_is_refused(config) -> None:
    async with opened(config(access_key_id="nobody-" + uuid.uuid4().hex[:8])) as store, asyncio.timeout(20):
        with pytest.raises(S3MediaStoreError, match="InvalidAccessKeyId"):
            await store.put(media_key(tenant_id="t", message_id=uuid.uuid4()), pieces(b"d", 1), expected_sha256=None)


async def test_readiness_checks_the_bucket(config, caplog: pytest.LogCaptureFixture) -> None:
    async with opened(config()) as store:
        assert await store.ready()
    missing = f"eva-missing-{uuid.uuid4().hex[:8]}"
    async with opened(config(bucket=missing)) as store:
        with caplog.at_level(logging.WARNING, logger="messaging_service.s3_media_store"):
            assert not await store.ready()
            assert not await store.ready()
    lines = [record.getMessage() for record in caplog.records if "not ready" in record.getMessage()]
    assert len(lines) == 1  # one line per new problem, not one per probe
    assert missing in lines[0] and "bucket does not exist" in lines[0]


async def test_an_unreachable_endpoint_is_not_ready_within_the_probe_budget(config) -> None:
    async with opened(config(endpoint_url="http://127.0.0.1:9", connect_timeout_seconds=0.5)) as store:
        await store.open()  # as the service does at start
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await store.ready()
        assert loop.time() - started < 2.0  # /readyz gives each check 2 s


async def test_a_closed_store_refuses_calls(config) -> None:
    store = S3MediaStore(config())
    assert await store.ready()
    await store.close()
    with pytest.raises(S3MediaStoreError, match="closed"):
        await store.exists(media_key(tenant_id="t", message_id=uuid.uuid4()))


async def test_downloads_spool_in_the_configured_folder_and_leave_nothing(config, tmp_path) -> None:
    spool = tmp_path / "spool" / "media"  # created on first use
    key = media_key(tenant_id="tenant-s", message_id=uuid.uuid4())
    data = os.urandom(3 * MIB)  # over the 1 MiB kept in memory
    async with opened(config(spool_dir=spool)) as store:
        await store.put(key, pieces(data, MIB), expected_sha256=b64(data))
        with pytest.raises(MediaIntegrityError):
            await store.put(key, pieces(b"other", 2), expected_sha256=b64(data))
        assert b"".join([chunk async for chunk in store.read(key)]) == data  # the mismatch did not replace it
    assert spool.is_dir() and list(spool.iterdir()) == []
