"""The sender worker: leases due outbound jobs (the head of each conversation, attendants' replies first), waits for
its number's slot in the governor, calls the Graph API and records the answer.

What is guaranteed (and tested):
- Per conversation, messages leave in the order they were written; a message being retried holds the ones after it.
- A message is sent at most once while every sender keeps its answers: an accepted send records its wamid and moves
  to SENT; Meta's retryable errors are retried with exponential backoff and jitter up to `max_attempts`; the others
  fail the message at once with Meta's code, title and details.
- A sender that dies (or a call that times out) between calling Meta and recording the answer leaves the job
  *uncertain*. Every send carries `biz_opaque_callback_data = "eva:<message id>"`, which Meta echoes in the send's
  statuses; those statuses attach the wamid to the message (inbound.py). The job is taken over only after
  `lease_seconds` (or `reconcile_seconds` after a timeout): if a status of the lost send arrived meanwhile, the
  message is not sent again. Only when Meta accepted the send but none of its statuses arrived within that time is
  the message sent a second time: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from eva_common.db import SessionFactory, transaction
from eva_common.outbox import enqueue
from eva_events.messaging import MESSAGE_STATUS_CHANGED

from messaging_service import message_store, statuses
from messaging_service.clients import SendingProfile
from messaging_service.events import message_event
from messaging_service.governor import SendGovernor
from messaging_service.graph_errors import PAIR_RATE_CODE, THROUGHPUT_CODES, GraphError, Verdict
from messaging_service.graph_send import Accepted, GraphSendClient, UncertainSend
from messaging_service.metrics import SENDS, TOKEN_REFUSED
from messaging_service.models import Message, OutboundJob
from messaging_service.outbound_store import DONE, FAILED, PENDING, OutboundStore, claim_outbound_jobs
from messaging_service.profiles import Profiles, send_rate
from messaging_service.repository import MessageRepository
from messaging_service.webhook import StatusUpdate

logger = logging.getLogger(__name__)


class HealthReporter(Protocol):
    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None: ...


MediaResolver = Callable[[str, list[str], SendingProfile], Awaitable[Mapping[str, str]]]
"""(tenant id, Eva upload ids, profile) → {upload id: Meta media id}, uploading to Meta what is not there yet."""


async def _no_media(_tenant_id: str, uploads: list[str], _profile: SendingProfile) -> Mapping[str, str]:
    if uploads:
        raise GraphError(code=None, subcode=None, message="media uploads are not configured", details=None,
                         http_status=500)
    return {}


def replace_media_ids(value: Any, ids: Mapping[str, str]) -> Any:
    """Meta's body with every `{"id": <Eva upload id>}` media object naming Meta's media id instead."""
    if isinstance(value, dict):
        replaced = {key: replace_media_ids(item, ids) for key, item in value.items()}
        media_id = replaced.get("id")
        if isinstance(media_id, str) and media_id in ids:
            replaced["id"] = ids[media_id]
        return replaced
    if isinstance(value, list):
        return [replace_media_ids(item, ids) for item in value]
    return value


class SlotLine:
    """The jobs of one number waiting for a governor slot on this replica, the most urgent first: when the number's
    queue has room (`SendGovernor` looks `max_wait` ahead), the next slot goes to the lowest priority value (an
    attendant's reply before automations and bulk sends), then the oldest. One pump per number reserves for all."""

    def __init__(self, governor: SendGovernor, phone_number_id: str) -> None:
        self._governor = governor
        self._number = phone_number_id
        self._waiting: list[tuple[int, int, asyncio.Future[float | None]]] = []
        self._order = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._rate = 1

    async def take(self, *, priority: int, rate: int, patience: float) -> float | None:
        """Seconds to sleep until this job's slot, or None when no slot came within `patience` seconds."""
        self._rate = rate
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=patience)
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()  # granted just as the patience ran out: use it
            future.cancel()
            return None

    async def _run(self) -> None:
        while self._waiting:
            try:
                slot = await self._governor.reserve(self._number, rate=self._rate)
            except Exception:  # Redis away: the waiting jobs run out of patience and go back to PostgreSQL
                logger.exception("the send governor is unavailable", extra={"phone_number_id": self._number})
                await asyncio.sleep(1.0)
                continue
            if not slot.reserved:
                await asyncio.sleep(slot.retry_after)
                continue
            while self._waiting:
                _, _, future = heapq.heappop(self._waiting)
                if not future.done():
                    future.set_result(slot.wait)
                    break
            else:  # everyone gave up: the slot stays unused (a gap of 1/rate seconds)
                return

    def release(self) -> None:
        """Shutdown: every waiting job gives up its place (it goes back to PostgreSQL for the next sender)."""
        for _, _, future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()


class OutboundSender:
    def __init__(
        self, *, sessions: SessionFactory, profiles: Profiles, graph: GraphSendClient, governor: SendGovernor,
        events_topic: str, health: HealthReporter | None = None, media: MediaResolver = _no_media,
        default_rate: int = 80, coexistence_rate: int = 20, max_attempts: int = 3, backoff_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0, lease_seconds: float = 60.0, reconcile_seconds: float = 30.0,
        concurrency: int = 32, batch: int = 64, poll_seconds: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._profiles = profiles
        self._graph = graph
        self._governor = governor
        self._events_topic = events_topic
        self._health = health
        self._media = media
        self._default_rate = default_rate
        self._coexistence_rate = coexistence_rate
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._lease = lease_seconds
        self._reconcile = reconcile_seconds
        self._concurrency = concurrency
        self._batch = batch
        self._poll = poll_seconds
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lines: dict[str, SlotLine] = {}

    def wake(self) -> None:
        """A message was queued on this replica: look now instead of at the next poll."""
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        for line in self._lines.values():
            line.release()

    async def run(self) -> None:
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                free = self._concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                    continue
                self._wakeup.clear()
                claimed = await self.claim(min(self._batch, free))
                for job_id, tenant_id, recovered in claimed:
                    task = asyncio.create_task(self.deliver(job_id, tenant_id, recovered=recovered))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
        finally:
            if self._tasks:  # a started call finishes and records its answer (bounded by the Graph timeout)
                await asyncio.wait(set(self._tasks))

    async def claim(self, batch: int) -> list[tuple[int, str, bool]]:
        async with transaction(self._sessions) as session:
            return await claim_outbound_jobs(session, batch=batch, lease_seconds=self._lease)

    async def run_once(self) -> int:
        """Claims the due jobs and delivers them (tests drive the sender with this); returns how many."""
        claimed = await self.claim(self._batch)
        await asyncio.gather(*(self.deliver(job_id, tenant, recovered=recovered)
                               for job_id, tenant, recovered in claimed))
        return len(claimed)

    # --- one job -----------------------------------------------------------------------------------------------

    async def deliver(self, job_id: int, tenant_id: str, *, recovered: bool) -> None:
        try:
            await self._deliver(job_id, tenant_id, recovered=recovered)
        except Exception:
            logger.exception("outbound delivery crashed; the job's lease will expire and it is taken over",
                             extra={"job_id": job_id, "tenant_id": tenant_id})

    async def _deliver(self, job_id: int, tenant_id: str, *, recovered: bool) -> None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            store = OutboundStore(session)
            job = await store.job(tenant_id=tenant_id, job_id=job_id)
            if job is None or job.state in (DONE, FAILED):
                return
            message = await store.message(tenant_id=tenant_id, message_id=job.message_id)
            if message is None:
                return
            if message.wamid:  # Meta accepted it: its answer was recorded, or its statuses told us
                await store.update_job(tenant_id=tenant_id, job_id=job_id, state=DONE, lease_until=None)
                return
            if recovered or job.uncertain:
                # The last send may have reached Meta, and its statuses had their time (the lease, or
                # `reconcile_seconds` after a timeout) to attach its wamid: none came, so it did not.
                logger.warning("resending an outbound message whose last send got no answer and no status", extra={
                    "job_id": job_id, "message_id": str(message.id), "recovered": recovered})
            # The attempt is counted before the call (in this transaction, not one of its own), so the job's
            # lease and count tell what happened if the sender dies; a job that gets no slot gives it back.
            job.attempts += 1
            message.attempts += 1
            await store.update_job(tenant_id=tenant_id, job_id=job_id, attempts=job.attempts)
            await store.update_message(tenant_id=tenant_id, message_id=message.id, attempts=message.attempts)
        try:
            profile = await self._profiles.get(tenant_id)
            line = self._lines.setdefault(profile.phone_number_id, SlotLine(self._governor, profile.phone_number_id))
            wait = await line.take(priority=job.priority, rate=self._rate(profile), patience=self._lease / 2)
            if wait is None:  # waited half its lease for a slot: back to PostgreSQL, still in its place
                await self._postpone(tenant_id, job, message)
                return
            ready_at = asyncio.get_running_loop().time() + wait
            body = await self._body(tenant_id, message, profile)
            await asyncio.sleep(max(0.0, ready_at - asyncio.get_running_loop().time()))
            async with self._governor.admitted(profile.phone_number_id, rate=self._rate(profile)):
                accepted = await self._graph.send(phone_number_id=profile.phone_number_id,
                                                  access_token=profile.access_token, body=body,
                                                  marketing=bool((message.raw or {}).get("marketing")))
        except UncertainSend as error:
            SENDS.labels("uncertain", "").inc()
            await self._uncertain(tenant_id, job_id, message, str(error))
            return
        except GraphError as error:
            await self._refused(tenant_id, job, message, error)
            return
        SENDS.labels("accepted", "").inc()
        await self._accepted(tenant_id, job_id, message, accepted)
        if profile.health == "unhealthy" and self._health is not None:
            self._profiles.forget(tenant_id)
            await self._health.report_health(tenant_id=tenant_id, healthy=True)

    def _rate(self, profile: SendingProfile) -> int:
        return send_rate(profile, default=self._default_rate, coexistence=self._coexistence_rate)

    async def _body(self, tenant_id: str, message: Message, profile: SendingProfile) -> dict[str, Any]:
        raw = message.raw or {}
        body = dict(raw.get("request") or {})
        uploads = [str(item) for item in raw.get("uploads") or []]
        if uploads:
            ids = await self._media(tenant_id, uploads, profile)
            body = replace_media_ids(body, ids)
        return body

    async def _postpone(self, tenant_id: str, job: OutboundJob, message: Message) -> None:
        """No slot came in time: the job goes back to PostgreSQL, due at once, its attempt not counted."""
        assert job.id is not None
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            store = OutboundStore(session)
            await store.update_job(tenant_id=tenant_id, job_id=job.id, state=PENDING, lease_until=None,
                                   attempts=job.attempts - 1, retry_in=timedelta(0))
            await store.update_message(tenant_id=tenant_id, message_id=message.id, attempts=message.attempts - 1)

    async def _accepted(self, tenant_id: str, job_id: int, message: Message, accepted: Accepted) -> None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            store = OutboundStore(session)
            repository = MessageRepository(session)
            await repository.lock_wamid(tenant_id=tenant_id, wamid=accepted.wamid)
            current = await store.message(tenant_id=tenant_id, message_id=message.id, for_update=True)
            if current is None:
                return
            if not current.wamid:
                current = await store.update_message(tenant_id=tenant_id, message_id=message.id,
                                                     wamid=accepted.wamid) or current
            await store.update_job(tenant_id=tenant_id, job_id=job_id, state=DONE, uncertain=False,
                                   lease_until=None, last_error=None)
            # Meta's statuses carry whole seconds: the acceptance does too, so it sorts before them in the history.
            update = StatusUpdate(wamid=accepted.wamid, status=statuses.SENT,
                                  occurred_at=datetime.now(UTC).replace(microsecond=0),
                                  recipient_id=accepted.wa_id, phone_number_id=current.phone_number_id, errors=None,
                                  raw={"source": "graph_api", "message_status": accepted.message_status})
            moved = await message_store.apply_status(session, current, update, events_topic=self._events_topic)
            await message_store.apply_parked(session, moved or current, events_topic=self._events_topic)

    async def _uncertain(self, tenant_id: str, job_id: int, message: Message, reason: str) -> None:
        logger.warning("outbound send got no answer; it may have been sent", extra={
            "job_id": job_id, "message_id": str(message.id), "reason": reason})
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            await OutboundStore(session).update_job(
                tenant_id=tenant_id, job_id=job_id, state=PENDING, uncertain=True, lease_until=None,
                last_error={"message": reason}, retry_in=timedelta(seconds=self._reconcile))

    async def _refused(self, tenant_id: str, job: OutboundJob, message: Message, error: GraphError) -> None:
        assert job.id is not None
        code = "" if error.code is None else str(error.code)
        profile_number = message.phone_number_id or ""
        retry = error.verdict() is Verdict.RETRY and job.attempts < self._max_attempts
        if error.code in THROUGHPUT_CODES and profile_number:
            await self._governor.pause(profile_number, seconds=self._backoff)
        if error.token_invalid:
            TOKEN_REFUSED.labels(tenant_id, "send").inc()
            self._profiles.forget(tenant_id)
            if self._health is not None:
                try:
                    await self._health.report_health(tenant_id=tenant_id, healthy=False, code=error.code or 0,
                                                     detail=error.message)
                except Exception:
                    logger.exception("could not report the WhatsApp connection unhealthy",
                                     extra={"tenant_id": tenant_id})
        if retry:
            SENDS.labels("retry", code).inc()
            wait = self._retry_delay(error, job.attempts)
            logger.info("outbound send refused; retrying", extra={
                "job_id": job.id, "message_id": str(message.id), "code": error.code, "attempt": job.attempts,
                "retry_in_seconds": round(wait, 3)})
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                await OutboundStore(session).update_job(
                    tenant_id=tenant_id, job_id=job.id, state=PENDING, lease_until=None,
                    last_error=error.as_meta_error(), retry_in=timedelta(seconds=wait))
            return
        SENDS.labels("failed", code).inc()
        logger.info("outbound send failed", extra={"job_id": job.id, "message_id": str(message.id),
                                                   "code": error.code, "attempts": job.attempts})
        failure = [error.as_meta_error()]
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            store = OutboundStore(session)
            await store.update_job(tenant_id=tenant_id, job_id=job.id, state=FAILED, lease_until=None,
                                   last_error=failure[0])
            moved = await store.update_message(tenant_id=tenant_id, message_id=message.id, status=statuses.FAILED,
                                               error=failure)
            if moved is not None:
                await enqueue(session, topic=self._events_topic, key=str(moved.conversation_id),
                              event=message_event(MESSAGE_STATUS_CHANGED, moved, error=failure,
                                                  extra={"occurredAt": datetime.now(UTC).isoformat()}))

    def _retry_delay(self, error: GraphError, attempt: int) -> float:
        """Exponential backoff with full jitter; the pair rate (131056) as Meta asks: 4^x seconds (reference §7)."""
        if error.code == PAIR_RATE_CODE:
            return float(min(4 ** (attempt - 1), self._backoff_max))
        ceiling = min(self._backoff * 2 ** (attempt - 1), self._backoff_max)
        return random.uniform(ceiling / 2, ceiling)
