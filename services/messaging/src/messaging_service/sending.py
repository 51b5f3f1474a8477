"""The outbound use cases: an attendant's (or key's, or automation's) message accepted, checked against Meta's rules
before Meta is called, stored PENDING with its job, its `message.created` event and its audit entry in one
transaction, and answered at once; a FAILED message sent again.

Checked here, each with a stable code: the content (outbound_content: Meta's limits), the conversation (the caller's
tenant's), the tenant (active, its WhatsApp connection healthy, its plan's quota), the 24-hour window (free-form
only; templates reopen it), the template (approved, its parameters), the message quoted or reacted to, the media
uploads. The Idempotency-Key makes a retried request answer the first message and send nothing again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from eva_common.audit import Actor, AuditRecorder
from eva_common.auth import Principal
from eva_common.db import SessionFactory, transaction
from eva_common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from eva_common.identity import SCOPE_MESSAGES_SEND
from eva_common.ids import new_id, parse_id
from eva_common.outbox import enqueue
from eva_events.messaging import MESSAGE_CREATED, MESSAGE_STATUS_CHANGED, SOURCE_EVA, ContactSnapshot
from eva_events.times import rfc3339

from messaging_service import statuses
from messaging_service.callback import callback_data
from messaging_service.clients import ConversationInfo, SendingProfile
from messaging_service.events import message_event
from messaging_service.graph_errors import MARKETING_LIMIT_CODE
from messaging_service.metrics import OUTBOUND_CREATED
from messaging_service.models import OUTBOUND, MediaUpload, Message, OutboundJob
from messaging_service.outbound_content import OutboundContent, parse_outbound
from messaging_service.outbound_store import PENDING, OutboundStore
from messaging_service.profiles import Profiles
from messaging_service.repository import MessageRepository
from messaging_service.template_check import check_template_send, template_for_send

SEND_SCOPE = SCOPE_MESSAGES_SEND
TEMPLATE = "template"
REACTION = "reaction"
PRIORITIES = {"attendant": 0, "automation": 1, "bulk": 2}
SENDER_KINDS = frozenset({"user", "api_key", "automation"})
MARKETING_RETRY_AFTER = timedelta(hours=24)  # Meta's per-user marketing limit (131049): not before a day
IDEMPOTENCY_KEY_MAX = 255


class Conversations(Protocol):
    async def conversation(self, *, principal: Principal, tenant_id: str, conversation_id: str) -> ConversationInfo:
        ...


class Quotas(Protocol):
    async def quota_exceeded(self, *, tenant_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SendRequest:
    conversation_id: str
    type: str
    content: Any
    reply_to_message_id: str = ""
    idempotency_key: str = ""
    sender: Mapping[str, str] | None = None  # service principals only: {kind, id, name}
    priority: str = ""
    tenant_id: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    message: Message
    replayed: bool


class _KeyTaken(Exception):
    """Another request holds the idempotency key (its transaction committed first)."""


def sender_of(principal: Principal, requested: Mapping[str, str] | None) -> dict[str, Any]:
    """Who sends: users and API keys are who their token says; a service (n8n-integration) names the automation."""
    if principal.is_service:
        kind = (requested or {}).get("kind") or "automation"
        if kind not in SENDER_KINDS:
            raise InvalidArgument(f"sender.kind must be one of {', '.join(sorted(SENDER_KINDS))}",
                                  code="VALIDATION_FAILED")
        sender = {"kind": kind, "id": (requested or {}).get("id") or principal.subject}
        if name := (requested or {}).get("name"):
            sender["name"] = name
        return sender
    return {"kind": "api_key" if principal.is_api_key else "user", "id": principal.subject}


def priority_of(principal: Principal, requested: str) -> int:
    if requested:
        if requested not in PRIORITIES:
            raise InvalidArgument(f"priority must be one of {', '.join(PRIORITIES)}", code="VALIDATION_FAILED")
        return PRIORITIES[requested]
    return PRIORITIES["automation"] if principal.is_service else PRIORITIES["attendant"]


def request_hash(request: SendRequest) -> str:
    """What makes two requests with one Idempotency-Key "the same": the conversation, type, content and quote."""
    canonical = json.dumps({"conversationId": request.conversation_id, "type": request.type,
                            "content": request.content, "replyTo": request.reply_to_message_id},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def window_open(conversation: ConversationInfo, now: datetime) -> bool:
    return conversation.window_expires_at is not None and conversation.window_expires_at > now


class SendingService:
    def __init__(
        self, *, sessions: SessionFactory, conversations: Conversations, profiles: Profiles, quotas: Quotas,
        events_topic: str, idempotency_ttl: timedelta = timedelta(hours=24), audit: AuditRecorder | None = None,
        wake: Callable[[], None] = lambda: None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._conversations = conversations
        self._profiles = profiles
        self._quotas = quotas
        self._events_topic = events_topic
        self._idempotency_ttl = idempotency_ttl
        self._audit = audit if audit is not None else AuditRecorder()
        self._wake = wake
        self._clock = clock

    async def send(self, *, principal: Principal, request: SendRequest, actor: Actor | None = None) -> SendResult:
        tenant_id = principal.tenant_scope(request.tenant_id)
        principal.require_scope(SEND_SCOPE)
        key = request.idempotency_key.strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise InvalidArgument(f"the Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters",
                                  code="VALIDATION_FAILED")
        digest = request_hash(request)
        if key and (replay := await self._replay(tenant_id, key, digest)) is not None:
            return replay
        sender = sender_of(principal, request.sender)
        priority = priority_of(principal, request.priority)
        content = parse_outbound(request.type, request.content)
        if parse_id(request.conversation_id) is None:
            raise NotFound("conversation not found", code="CONVERSATION_NOT_FOUND")
        conversation = await self._conversations.conversation(
            principal=principal, tenant_id=tenant_id, conversation_id=request.conversation_id)
        profile = await self._profile(tenant_id)
        if await self._quotas.quota_exceeded(tenant_id=tenant_id):
            raise FailedPrecondition("the plan's monthly message quota is used up", code="QUOTA_EXCEEDED")
        now = self._clock()
        if content.type != TEMPLATE and not window_open(conversation, now):
            closed = conversation.window_expires_at
            raise FailedPrecondition(
                ("the 24-hour window closed at " + rfc3339(closed) if closed else "the guest has not written yet")
                + ": only a template can be sent", code="WINDOW_CLOSED",
                extra={"windowClosedAt": rfc3339(closed) if closed else None})
        recipient = _recipient(conversation)
        message_id = new_id()
        try:
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                store = OutboundStore(session)
                category = await self._check_template(session, tenant_id, content)
                context = await self._quoted(store, tenant_id, conversation, request.reply_to_message_id)
                target = await self._reaction_target(store, tenant_id, conversation, content)
                uploads = await self._uploads(session, tenant_id, content)
                body = _meta_body(content, recipient=recipient, context=context, reaction_target=target,
                                  message_id=message_id)
                message = Message(
                    id=message_id, tenant_id=tenant_id, conversation_id=uuid.UUID(conversation.id),
                    contact_id=uuid.UUID(conversation.contact_id), wamid=None, direction=OUTBOUND,
                    type=content.type, status=statuses.PENDING, content=content.stored,
                    context={"messageId": request.reply_to_message_id, "wamid": context} if context else None,
                    raw={"request": body, "uploads": uploads, "marketing": category == "marketing"},
                    phone_number_id=profile.phone_number_id, sent_at=now, sender=sender, source=SOURCE_EVA,
                    category=category)
                stored = await MessageRepository(session).insert_once(message)
                assert stored is not None  # no wamid yet: nothing it could conflict with
                message = stored
                if key:
                    await store.forget_idempotency_key(tenant_id=tenant_id, key=key,
                                                       older_than=now - self._idempotency_ttl)
                    if not await store.claim_idempotency_key(tenant_id=tenant_id, key=key, request_hash=digest,
                                                             message_id=message_id):
                        raise _KeyTaken
                await store.add_job(OutboundJob(tenant_id=tenant_id, message_id=message_id,
                                                conversation_id=message.conversation_id, priority=priority))
                await enqueue(session, topic=self._events_topic, key=str(message.conversation_id),
                              event=message_event(MESSAGE_CREATED, message, contact=ContactSnapshot(
                                  id=conversation.contact_id, wa_id=conversation.wa_id)))
                await self._audit.record(
                    session, tenant_id=tenant_id, actor=actor or Actor(principal), action="message.sent",
                    target_type="message", target_id=str(message_id),
                    details={"conversationId": conversation.id, "type": content.type, "sender": sender})
        except _KeyTaken:
            replay = await self._replay(tenant_id, key, digest)
            if replay is None:  # the winner's key expired in between: vanishingly rare, and safe to refuse
                raise FailedPrecondition("the Idempotency-Key is in use; retry",
                                         code="IDEMPOTENCY_KEY_REUSED") from None
            return replay
        OUTBOUND_CREATED.labels(content.type, sender["kind"]).inc()
        self._wake()
        return SendResult(message=message, replayed=False)

    async def retry(self, *, principal: Principal, message_id: str, tenant_id: str = "",
                    actor: Actor | None = None) -> Message:
        """Sends a FAILED outbound message again: the same message (same id), a new attempt."""
        tenant = principal.tenant_scope(tenant_id)
        principal.require_scope(SEND_SCOPE)
        key = parse_id(message_id)
        if key is None:
            raise NotFound("message not found", code="MESSAGE_NOT_FOUND")
        await self._profile(tenant)
        async with transaction(self._sessions, tenant_id=tenant) as session:
            store = OutboundStore(session)
            message = await store.message(tenant_id=tenant, message_id=key, for_update=True)
            if message is None:
                raise NotFound("message not found", code="MESSAGE_NOT_FOUND")
            if message.direction != OUTBOUND or message.source != SOURCE_EVA:
                raise FailedPrecondition("only messages sent through Eva can be retried", code="NOT_RETRYABLE")
            if message.status != statuses.FAILED:
                raise FailedPrecondition(f"the message is {message.status}, not FAILED", code="MESSAGE_NOT_FAILED")
            now = self._clock()
            retry_at = _marketing_retry_at(message)
            if retry_at is not None and retry_at > now:
                raise FailedPrecondition(
                    "Meta limits marketing messages per guest (131049): retry after " + rfc3339(retry_at),
                    code="RETRY_TOO_SOON", extra={"retryAt": rfc3339(retry_at)})
            if message.type != TEMPLATE:
                conversation = await self._conversations.conversation(
                    principal=principal, tenant_id=tenant, conversation_id=str(message.conversation_id))
                if not window_open(conversation, now):
                    closed = conversation.window_expires_at
                    raise FailedPrecondition("the 24-hour window is closed: only a template can be sent",
                                             code="WINDOW_CLOSED",
                                             extra={"windowClosedAt": rfc3339(closed) if closed else None})
            job = await store.job_of(tenant_id=tenant, message_id=message.id)
            if job is None or job.id is None:
                raise FailedPrecondition("the message has no delivery to retry", code="NOT_RETRYABLE")
            await store.update_job(tenant_id=tenant, job_id=job.id, state=PENDING, attempts=0, uncertain=False,
                                   last_error=None, lease_until=None, retry_in=timedelta(0))
            moved = await store.update_message(tenant_id=tenant, message_id=message.id, status=statuses.PENDING,
                                               error=None, wamid=None)
            assert moved is not None
            await enqueue(session, topic=self._events_topic, key=str(moved.conversation_id),
                          event=message_event(MESSAGE_STATUS_CHANGED, moved,
                                              extra={"occurredAt": rfc3339(now), "retried": True}))
            await self._audit.record(session, tenant_id=tenant, actor=actor or Actor(principal),
                                     action="message.retried", target_type="message", target_id=str(message.id))
        self._wake()
        return moved

    # --- checks ------------------------------------------------------------------------------------------------

    async def _replay(self, tenant_id: str, key: str, digest: str) -> SendResult | None:
        async with transaction(self._sessions, tenant_id=tenant_id) as session:
            store = OutboundStore(session)
            found = await store.idempotency_key(tenant_id=tenant_id, key=key)
            if found is None or found.created_at < self._clock() - self._idempotency_ttl:
                return None
            if found.request_hash != digest:
                raise FailedPrecondition("this Idempotency-Key was used with another request",
                                         code="IDEMPOTENCY_KEY_REUSED")
            message = await store.message(tenant_id=tenant_id, message_id=found.message_id)
        if message is None:
            return None
        return SendResult(message=message, replayed=True)

    async def _profile(self, tenant_id: str) -> SendingProfile:
        """The tenant's sending profile; a suspended tenant is refused (403) whichever service notices first."""
        try:
            profile = await self._profiles.get(tenant_id)
        except DomainError as error:
            if error.code == "TENANT_SUSPENDED":
                raise PermissionDenied("the tenant is suspended", code="TENANT_SUSPENDED") from error
            raise
        self._check_tenant(profile)
        return profile

    @staticmethod
    def _check_tenant(profile: SendingProfile) -> None:
        if profile.tenant_status != "active":
            raise PermissionDenied("the tenant is suspended", code="TENANT_SUSPENDED")
        if profile.health == "unhealthy":
            raise FailedPrecondition("Meta refused the WhatsApp access token; renew it in the WhatsApp settings",
                                     code="WHATSAPP_UNHEALTHY")

    async def _check_template(self, session: Any, tenant_id: str, content: OutboundContent) -> str | None:
        if content.template is None:
            return None
        template = await template_for_send(session, tenant_id=tenant_id, name=content.template.name,
                                           language=content.template.language)
        meta = content.meta if isinstance(content.meta, dict) else {}
        components = meta.get("components") or []
        check_template_send(template, name=content.template.name, language=content.template.language,
                            components=list(components))
        assert template is not None  # check_template_send refuses a missing template
        return (template.category or "").lower() or None

    @staticmethod
    async def _quoted(store: OutboundStore, tenant_id: str, conversation: ConversationInfo,
                      reply_to: str) -> str | None:
        if not reply_to:
            return None
        return await _wamid_of(store, tenant_id, conversation, reply_to, what="replyToMessageId")

    @staticmethod
    async def _reaction_target(store: OutboundStore, tenant_id: str, conversation: ConversationInfo,
                               content: OutboundContent) -> str | None:
        if content.reaction_target is None:
            return None
        return await _wamid_of(store, tenant_id, conversation, content.reaction_target, what="reaction.messageId")

    @staticmethod
    async def _uploads(session: Any, tenant_id: str, content: OutboundContent) -> list[str]:
        wanted = [ref.upload_id for ref in content.media_refs if ref.upload_id]
        for upload_id in wanted:
            key = parse_id(upload_id)
            upload = await session.get(MediaUpload, key) if key is not None else None
            if upload is None or upload.tenant_id != tenant_id:
                raise NotFound(f"no uploaded media {upload_id}", code="MEDIA_NOT_FOUND")
        return wanted


async def _wamid_of(store: OutboundStore, tenant_id: str, conversation: ConversationInfo, message_id: str, *,
                    what: str) -> str:
    key = parse_id(message_id)
    target = await store.message(tenant_id=tenant_id, message_id=key) if key is not None else None
    if target is None or str(target.conversation_id) != conversation.id:
        raise NotFound(f"{what}: no such message in this conversation", code="MESSAGE_NOT_FOUND")
    if not target.wamid:
        raise FailedPrecondition(f"{what}: that message has not reached WhatsApp yet", code="MESSAGE_NOT_SENT")
    return target.wamid


def _recipient(conversation: ConversationInfo) -> dict[str, str]:
    """Meta's recipient field: the phone-based wa_id when known, else the business-scoped user id (reference §12)."""
    if conversation.wa_id:
        return {"to": conversation.wa_id}
    if conversation.user_id:
        return {"recipient": conversation.user_id}
    raise FailedPrecondition("the guest has no WhatsApp id to answer", code="RECIPIENT_UNKNOWN")


def _meta_body(content: OutboundContent, *, recipient: Mapping[str, str], context: str | None,
               reaction_target: str | None, message_id: uuid.UUID) -> dict[str, Any]:
    """Meta's request body (reference §5), media still named by Eva's upload ids (the sender swaps in Meta's)."""
    meta: Any = content.meta
    if reaction_target is not None and isinstance(meta, dict):
        meta = {**meta, "message_id": reaction_target}
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient,
                            "type": content.type, content.type: meta,
                            "biz_opaque_callback_data": callback_data(message_id)}
    if context:
        body["context"] = {"message_id": context}
    return body


def _marketing_retry_at(message: Message) -> datetime | None:
    for error in message.error or []:
        if isinstance(error, dict) and error.get("code") == MARKETING_LIMIT_CODE:
            return message.updated_at + MARKETING_RETRY_AFTER
    return None


