"""Reading and typing: an attendant reads a conversation's guest messages (they are marked read, `message.read`
resets the conversation's unread count, and Meta's read receipt goes out under the tenant's policy), or starts typing
(Meta's typing indicator, reference §12: at most once per `typing_interval` per conversation, only inside the
window, under the same policy; it also marks the guest's messages read, at Meta and here).

Meta's calls leave in the background, through the send governor: the attendant's click never waits for Meta, and a
refused receipt is logged (a read receipt is a courtesy: nothing is retried or lost with it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import InvalidArgument, NotFound
from eva_common.ids import parse_id
from eva_common.outbox import enqueue
from eva_events.envelope import make_event
from eva_events.messaging import MESSAGE_READ, MessagesRead, SenderView
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from messaging_service.clients import SendingProfile
from messaging_service.governor import SendGovernor
from messaging_service.graph_errors import GraphError
from messaging_service.graph_send import GraphSendClient, UncertainSend
from messaging_service.models import Message
from messaging_service.outbound_store import OutboundStore
from messaging_service.profiles import Profiles, send_rate
from messaging_service.sending import SEND_SCOPE, Conversations, sender_of, window_open

logger = logging.getLogger(__name__)

NEVER = "never"



@dataclass(frozen=True, slots=True)
class ReadResult:
    conversation_id: str
    message_id: str | None
    marked: int
    read_at: datetime
    receipt_sent: bool


class ReadingService:
    def __init__(
        self, *, sessions: SessionFactory, conversations: Conversations, profiles: Profiles, graph: GraphSendClient,
        governor: SendGovernor, redis: Redis, events_topic: str, default_rate: int = 80, coexistence_rate: int = 20,
        typing_interval_seconds: float = 25.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._conversations = conversations
        self._profiles = profiles
        self._graph = graph
        self._governor = governor
        self._redis = redis
        self._events_topic = events_topic
        self._default_rate = default_rate
        self._coexistence_rate = coexistence_rate
        self._typing_interval = typing_interval_seconds
        self._clock = clock
        self._background: set[asyncio.Task[None]] = set()

    async def mark_read(self, *, principal: Principal, message_id: str = "", conversation_id: str = "",
                        tenant_id: str = "", receipt: bool = True) -> ReadResult:
        """Marks the guest messages read here; sends Meta's read receipt unless `receipt` is False (the typing
        indicator already marks them read at Meta)."""
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(SEND_SCOPE)
        if bool(message_id) == bool(conversation_id):
            raise InvalidArgument("name a message or a conversation", code="VALIDATION_FAILED")
        reader = sender_of(principal, None)
        now = self._clock()
        async with transaction(self._sessions, tenant_id=tenant) as session:
            store = OutboundStore(session)
            if message_id:
                key = parse_id(message_id)
                named = await store.message(tenant_id=tenant, message_id=key) if key is not None else None
                if named is None:
                    raise NotFound("message not found", code="MESSAGE_NOT_FOUND")
                conversation_key = named.conversation_id
                latest = await store.latest_inbound(tenant_id=tenant, conversation_id=conversation_key,
                                                    up_to=(named.sent_at, named.id))
            else:
                conversation_key = _conversation_key(conversation_id)
                latest = await store.latest_inbound(tenant_id=tenant, conversation_id=conversation_key)
            marked = 0
            if latest is not None:
                marked = await store.mark_inbound_read(tenant_id=tenant, conversation_id=conversation_key,
                                                       up_to=(latest.sent_at, latest.id), read_at=now)
                await self._announce(session, tenant, conversation_key, latest, now, reader, marked)
        if latest is None and conversation_id:  # no guest message: still say whether the conversation exists
            await self._conversations.conversation(principal=principal, tenant_id=tenant,
                                                   conversation_id=conversation_id)
        sent = False
        if receipt and latest is not None and latest.wamid and marked > 0:
            profile = await self._profiles.get(tenant)
            if profile.read_receipts != NEVER:
                self._in_background(self._receipt(profile, latest.wamid, typing=False))
                sent = True
        return ReadResult(conversation_id=str(conversation_key), message_id=str(latest.id) if latest else None,
                          marked=marked, read_at=now, receipt_sent=sent)

    async def typing(self, *, principal: Principal, conversation_id: str, tenant_id: str = "") -> str:
        """Meta's typing indicator for the conversation's latest guest message; the outcome says why not when not."""
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(SEND_SCOPE)
        conversation_key = _conversation_key(conversation_id)
        conversation = await self._conversations.conversation(principal=principal, tenant_id=tenant,
                                                              conversation_id=conversation_id)
        profile = await self._profiles.get(tenant)
        if profile.read_receipts == NEVER:
            return "policy"
        if not window_open(conversation, self._clock()):
            return "window_closed"
        async with transaction(self._sessions, tenant_id=tenant) as session:
            latest = await OutboundStore(session).latest_inbound(tenant_id=tenant, conversation_id=conversation_key)
        if latest is None or not latest.wamid:
            return "no_guest_message"
        debounce = f"typing:{tenant}:{conversation_key}"
        if not await self._redis.set(debounce, "1", nx=True, px=int(self._typing_interval * 1000)):
            return "debounced"
        self._in_background(self._receipt(profile, latest.wamid, typing=True))
        await self.mark_read(principal=principal, conversation_id=conversation_id, tenant_id=tenant_id, receipt=False)
        return "sent"

    async def _announce(self, session: AsyncSession, tenant: str, conversation_id: uuid.UUID, latest: Message,
                        now: datetime, reader: dict[str, str], marked: int) -> None:
        data = MessagesRead(conversation_id=str(conversation_id), message_id=str(latest.id),
                            message_sent_at=latest.sent_at, read_at=now, read_by=SenderView(**reader), marked=marked)
        await enqueue(session, topic=self._events_topic, key=str(conversation_id),
                      event=make_event(MESSAGE_READ, tenant_id=tenant, data=data))

    async def _receipt(self, profile: SendingProfile, wamid: str, *, typing: bool) -> None:
        rate = send_rate(profile, default=self._default_rate, coexistence=self._coexistence_rate)
        slot = await self._governor.reserve(profile.phone_number_id, rate=rate)
        if not slot.reserved:
            logger.info("read receipt skipped: the number's send queue is full",
                        extra={"tenant_id": profile.tenant_id})
            return
        await asyncio.sleep(slot.wait)
        try:
            async with self._governor.admitted(profile.phone_number_id, rate=rate):
                await self._graph.mark_read(phone_number_id=profile.phone_number_id,
                                            access_token=profile.access_token, wamid=wamid, typing=typing)
        except (GraphError, UncertainSend) as error:
            logger.warning("Meta refused a read receipt", extra={
                "tenant_id": profile.tenant_id, "wamid": wamid, "typing": typing, "error": str(error)})

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Waits for the receipts still on their way (shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=10)


def _conversation_key(conversation_id: str) -> uuid.UUID:
    key = parse_id(conversation_id)
    if key is None:
        raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
    return key
