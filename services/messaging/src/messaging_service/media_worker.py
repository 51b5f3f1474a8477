"""The media job: for each pending row of `media_jobs` (leased through claim_media_jobs, so it survives restarts and
several workers), get the tenant's access token (TenantService.GetSendingCredentials, service token), ask the Graph
API for the media URL, download it with the bearer, check Meta's sha256, store it (MediaStore), mark the message's
media `ready` and announce `message.updated`. Failures are retried with exponential backoff; after `max_attempts`
the media becomes `failed` with the error, also announced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import httpx
from eva_common.db import SessionFactory, transaction
from eva_common.outbox import enqueue

from messaging_service import media_state
from messaging_service.events import MESSAGE_UPDATED, message_event
from messaging_service.media_store import MediaIntegrityError, MediaStore, media_key
from messaging_service.repository import MessageRepository, claim_media_jobs

logger = logging.getLogger(__name__)

class MediaFetchError(Exception):
    """The Graph API refused or failed the media lookup or download (retried)."""


class CredentialsSource(Protocol):
    async def access_token(self, *, tenant_id: str) -> str:
        """The tenant's WhatsApp access token (decrypted by the tenant service; never logged)."""
        ...


@dataclass(frozen=True, slots=True)
class MediaInfo:
    url: str
    mime_type: str | None
    sha256: str | None


class GraphMediaClient:
    """`GET {graph}/{version}/{media_id}` then `GET <url>`, both with the tenant's bearer token (`api_version`:
    EVA_WHATSAPP_API_VERSION)."""

    def __init__(
        self, *, http: httpx.AsyncClient, graph_url: str, api_version: str, chunk_size: int = 64 * 1024
    ) -> None:
        self._http = http
        self._base_url = f"{graph_url.rstrip('/')}/{api_version}"
        self._chunk_size = chunk_size

    async def describe(self, media_id: str, *, token: str) -> MediaInfo:
        response = await self._http.get(f"{self._base_url}/{media_id}",
                                        headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise MediaFetchError(f"media lookup answered {response.status_code}")
        body: Any = response.json()
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise MediaFetchError("media lookup returned no url")
        mime_type, sha256 = body.get("mime_type"), body.get("sha256")
        return MediaInfo(url=url, mime_type=mime_type if isinstance(mime_type, str) else None,
                         sha256=sha256 if isinstance(sha256, str) else None)

    @contextlib.asynccontextmanager
    async def download(self, url: str, *, token: str) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code != 200:
                raise MediaFetchError(f"media download answered {response.status_code}")
            yield response.aiter_bytes(self._chunk_size)


class MediaWorker:
    def __init__(
        self, *, sessions: SessionFactory, credentials: CredentialsSource, graph: GraphMediaClient, store: MediaStore,
        events_topic: str, max_attempts: int = 5, backoff_seconds: float = 2.0, poll_seconds: float = 1.0,
        lease_seconds: float = 300.0, batch_size: int = 4,
    ) -> None:
        self._sessions = sessions
        self._credentials = credentials
        self._graph = graph
        self._store = store
        self._events_topic = events_topic
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._batch_size = batch_size
        self._stopping = asyncio.Event()

    async def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                logger.exception("media worker pass failed")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self._poll_seconds)

    async def run_once(self) -> int:
        """Claims the due jobs and works them; returns how many were claimed."""
        async with transaction(self._sessions) as session:
            claimed = await claim_media_jobs(session, batch=self._batch_size, lease_seconds=self._lease_seconds)
        for job_id, tenant_id in claimed:
            await self._work(job_id=job_id, tenant_id=tenant_id)
        return len(claimed)

    async def _work(self, *, job_id: int, tenant_id: str) -> None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = MessageRepository(session)
            job = await repository.media_job(tenant_id=tenant_id, job_id=job_id)
            message = await repository.message(tenant_id=tenant_id, message_id=job.message_id) if job else None
        if job is None or message is None or job.state != "pending":
            return
        announced_sha = (message.media or {}).get("sha256")
        try:
            token = await self._credentials.access_token(tenant_id=tenant_id)
            info = await self._graph.describe(job.media_id, token=token)
            expected = info.sha256 or (announced_sha if isinstance(announced_sha, str) else None)
            async with self._graph.download(info.url, token=token) as chunks:
                stored = await self._store.put(media_key(tenant_id=tenant_id, message_id=message.id), chunks,
                                               expected_sha256=expected)
        except Exception as error:  # every failure is retried, then recorded
            await self._failed_attempt(job_id=job_id, tenant_id=tenant_id, attempts=job.attempts + 1,
                                       error=_describe(error))
            return
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = MessageRepository(session)
            current = await repository.message(tenant_id=tenant_id, message_id=message.id)
            media = media_state.ready(
                (current.media if current else None) or {}, mime_type=info.mime_type, sha256=stored.sha256,
                size=stored.size)
            updated = await repository.set_media(tenant_id=tenant_id, message_id=message.id, media=media)
            await repository.finish_media_job(tenant_id=tenant_id, job_id=job_id, state="done",
                                              attempts=job.attempts + 1, error=None)
            if updated is not None:
                await enqueue(session, topic=self._events_topic, key=str(updated.conversation_id),
                              event=message_event(MESSAGE_UPDATED, updated,
                                                  history=await repository.history_of(updated)))
        logger.info("media stored", extra={"message_id": str(message.id), "size": stored.size})

    async def _failed_attempt(self, *, job_id: int, tenant_id: str, attempts: int, error: str) -> None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            repository = MessageRepository(session)
            if attempts < self._max_attempts:
                delay = timedelta(seconds=self._backoff_seconds * 2 ** (attempts - 1))
                await repository.finish_media_job(tenant_id=tenant_id, job_id=job_id, state="pending",
                                                  attempts=attempts, error=error, retry_in=delay)
                logger.warning("media download failed; will retry",
                               extra={"job_id": job_id, "attempts": attempts, "error": error})
                return
            await repository.finish_media_job(tenant_id=tenant_id, job_id=job_id, state="failed",
                                              attempts=attempts, error=error)
            job = await repository.media_job(tenant_id=tenant_id, job_id=job_id)
            message = await repository.message(tenant_id=tenant_id, message_id=job.message_id) if job else None
            if message is None:
                return
            updated = await repository.set_media(tenant_id=tenant_id, message_id=message.id,
                                                 media=media_state.failed(message.media or {}, error=error))
            if updated is not None:
                await enqueue(session, topic=self._events_topic, key=str(updated.conversation_id),
                              event=message_event(MESSAGE_UPDATED, updated,
                                                  history=await repository.history_of(updated)))
        logger.warning("media download gave up", extra={"job_id": job_id, "attempts": attempts, "error": error})


def _describe(error: Exception) -> str:
    if isinstance(error, MediaIntegrityError | MediaFetchError):
        return str(error)
    if isinstance(error, httpx.HTTPError):
        return f"media transfer failed: {type(error).__name__}"
    return f"{type(error).__name__}: {error}"[:500]
