"""`S3MediaStore`: the `MediaStore` port on any S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...), through
aiobotocore. Same semantics as `LocalMediaStore`: the bytes are spooled to a temporary file while hashed (bounded
memory), and only when their sha256 matches are they uploaded under the key — one PutObject up to
`multipart_threshold`, a multipart upload above it (aborted on any failure) — so nothing is ever visible under a key
unless it is whole and verified. Objects carry their SHA-256 (`x-amz-meta-sha256`, and `ChecksumSHA256`, which the
server verifies, unless `checksums` is off for stores that do not support it).

The client is created by `open()` (or on first use, inside the running loop) and closed by `close()`. The bucket is
never created here: `ready()` checks it with HeadBucket (operators create it)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from messaging_service.media_store import (
    MEDIA_CHUNK_SIZE,
    MediaIntegrityError,
    StoredMedia,
    sha256_matches,
    valid_media_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3's smallest part (except the last)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
READINESS_TIMEOUT_SECONDS = 1.5
_SPOOL_IN_MEMORY = MIB  # smaller media never touch the disk
T = TypeVar("T")


class S3MediaStoreError(Exception):
    """An S3 call failed (bad credentials, missing bucket, unreachable endpoint, ...). The message names the
    operation, the bucket and S3's error code, never a credential."""


@dataclass(frozen=True, slots=True)
class S3Config:
    bucket: str
    endpoint_url: str | None = None  # None: AWS
    region: str | None = None
    access_key_id: str | None = None  # None (with the secret): the default AWS credential chain
    secret_access_key: SecretStr | None = None
    prefix: str = ""
    path_style: bool = False  # MinIO and most self-hosted stores need path-style addressing
    multipart_threshold: int = 16 * MIB
    part_size: int = 8 * MIB
    checksums: bool = True  # send ChecksumSHA256 on PutObject / UploadPart
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    max_attempts: int = 3
    spool_dir: Path | None = None  # None: the system's temporary folder


def _describe(operation: str, bucket: str, error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = details.get("Code", "?"), details.get("Message", "")
        return f"S3 {operation} on bucket {bucket!r} failed: {code} (HTTP {status}) {message}".strip()
    return f"S3 {operation} on bucket {bucket!r} failed: {type(error).__name__}: {error}"


def _hint(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {READINESS_TIMEOUT_SECONDS} s: is EVA_MEDIA_S3_ENDPOINT_URL right?"
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return " — the bucket does not exist (operators create it; the service never does)"
        if status in (401, 403):
            return " — the credentials were refused or lack access to the bucket"
    return ""


def _load_models(loader: Any) -> None:
    loader.load_service_model("s3", "service-2")
    loader.load_service_model("s3", "endpoint-rule-set-1")


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING


class S3MediaStore:
    def __init__(self, config: S3Config) -> None:
        if not config.bucket:
            raise ValueError("an S3 media store needs a bucket")
        if config.part_size < 1 or config.multipart_threshold < 1:
            raise ValueError("part size and multipart threshold must be positive")
        self._config = config
        self._prefix = f"{config.prefix.strip('/')}/" if config.prefix.strip("/") else ""
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False
        self._last_readiness_problem: str | None = None

    @property
    def bucket(self) -> str:
        return self._config.bucket

    def object_key(self, key: str) -> str:
        """The S3 key of a media key: the prefix, then the key (validated like the local store's)."""
        return self._prefix + valid_media_key(key)

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._closed:
                raise S3MediaStoreError("the S3 media store is closed")
            if self._client is None:
                config = self._config
                secret = config.secret_access_key.get_secret_value() if config.secret_access_key else None
                session = get_session()
                # botocore parses S3's large JSON models synchronously: do it off the event loop (cached).
                await asyncio.to_thread(_load_models, session.get_component("data_loader"))
                client: S3Client = await self._exit.enter_async_context(session.create_client(
                    "s3", endpoint_url=config.endpoint_url or None, region_name=config.region or None,
                    aws_access_key_id=config.access_key_id or None, aws_secret_access_key=secret or None,
                    config=AioConfig(
                        s3={"addressing_style": "path" if config.path_style else "auto"},
                        signature_version="s3v4",
                        connect_timeout=config.connect_timeout_seconds,
                        read_timeout=config.read_timeout_seconds,
                        retries={"max_attempts": config.max_attempts, "mode": "standard"},
                        # No implicit CRC checksums (several S3-compatible stores refuse them); ours are explicit.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                ))
                self._client = client
        return self._client

    async def open(self) -> None:
        """Creates the client now (no network call) rather than on first use; the composition root calls it at
        start, so a readiness probe only measures HeadBucket."""
        await self._s3()

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except (ClientError, BotoCoreError) as error:
            raise S3MediaStoreError(_describe(operation, self.bucket, error)) from error

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            self._client = None
            await self._exit.aclose()

    async def ready(self) -> bool:
        """HeadBucket: False (and one log line per new problem) when the bucket is missing, the credentials are
        refused or the endpoint does not answer."""
        try:
            s3 = await self._s3()
            async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):  # within /readyz's own 2 s, so this logs why
                await s3.head_bucket(Bucket=self.bucket)
        except Exception as error:  # noqa: BLE001 — any failure means not ready
            problem = _describe("HeadBucket", self.bucket, error) + _hint(error)
            if problem != self._last_readiness_problem:
                logger.warning("media store not ready: %s", problem, extra={"bucket": self.bucket})
            self._last_readiness_problem = problem
            return False
        if self._last_readiness_problem is not None:
            logger.info("media store ready again", extra={"bucket": self.bucket})
        self._last_readiness_problem = None
        return True

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, expected_sha256: str | None) -> StoredMedia:
        object_key = self.object_key(key)
        spool_dir = self._config.spool_dir
        if spool_dir is not None:
            await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 — closed below
            max_size=_SPOOL_IN_MEMORY, dir=str(spool_dir) if spool_dir else None)
        try:
            digest, size = hashlib.sha256(), 0
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(spool.write, chunk)
            if expected_sha256 and not sha256_matches(digest.digest(), expected_sha256):
                raise MediaIntegrityError("sha256 mismatch: the downloaded media is not what Meta announced")
            sha256 = base64.b64encode(digest.digest()).decode()
            await asyncio.to_thread(spool.seek, 0)
            if size <= self._config.multipart_threshold:
                await self._put_object(object_key, spool, size=size, sha256=sha256)
            else:
                await self._multipart(object_key, spool, sha256=sha256)
        finally:
            await asyncio.to_thread(spool.close)
        return StoredMedia(size=size, sha256=sha256)

    async def _put_object(self, object_key: str, spool: IO[bytes], *, size: int, sha256: str) -> None:
        body = await asyncio.to_thread(spool.read)
        s3 = await self._s3()
        extra: dict[str, Any] = {"ChecksumSHA256": sha256} if self._config.checksums else {}
        await self._call("PutObject", s3.put_object(
            Bucket=self.bucket, Key=object_key, Body=body, ContentLength=size, Metadata={"sha256": sha256},
            **extra))

    async def _multipart(self, object_key: str, spool: IO[bytes], *, sha256: str) -> None:
        s3 = await self._s3()
        checksums = self._config.checksums
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
        created = await self._call("CreateMultipartUpload", s3.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, Metadata={"sha256": sha256}, **extra))
        upload_id = created["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            while part := await asyncio.to_thread(spool.read, self._config.part_size):
                number = len(parts) + 1
                part_sha = base64.b64encode(hashlib.sha256(part).digest()).decode()
                part_extra: dict[str, Any] = {"ChecksumSHA256": part_sha} if checksums else {}
                uploaded = await self._call("UploadPart", s3.upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=part,
                    ContentLength=len(part), **part_extra))
                completed: CompletedPartTypeDef = {"ETag": uploaded["ETag"], "PartNumber": number}
                if checksums:
                    completed["ChecksumSHA256"] = part_sha
                parts.append(completed)
            await self._call("CompleteMultipartUpload", s3.complete_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}))
        except BaseException:
            try:
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            except Exception as error:  # noqa: BLE001 — the first failure is the one raised
                logger.warning("could not abort a multipart upload; a bucket lifecycle rule will remove it",
                               extra={"bucket": self.bucket, "error": _describe("AbortMultipartUpload",
                                                                                self.bucket, error)})
            raise

    async def exists(self, key: str) -> bool:
        object_key = self.object_key(key)
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _is_missing(error):
                return False
            raise S3MediaStoreError(_describe("HeadObject", self.bucket, error)) from error
        except BotoCoreError as error:
            raise S3MediaStoreError(_describe("HeadObject", self.bucket, error)) from error
        return True

    async def read(self, key: str, *, chunk_size: int = MEDIA_CHUNK_SIZE) -> AsyncIterator[bytes]:
        object_key = self.object_key(key)
        s3 = await self._s3()
        response = await self._call("GetObject", s3.get_object(Bucket=self.bucket, Key=object_key))
        body = response["Body"]
        try:
            buffer = bytearray()
            while True:
                piece = await self._call("GetObject", body.read(chunk_size - len(buffer)))
                if not piece:
                    break
                buffer += piece
                if len(buffer) >= chunk_size:
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)
        finally:
            body.close()
