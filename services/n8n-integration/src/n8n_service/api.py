"""The /n8n API: what n8n (or any automation) calls, with a tenant's API key (`X-Api-Key`).

Every call: the key is exchanged at auth for its short-lived `api_key` token (`eva_common.apikeys`, as the gateway
does; cached until shortly before it expires, verified again — revocation included — on every use), counted against
the key's rate limit (Redis, `eva_common.ratelimit`; 429 RATE_LIMITED with Retry-After), and checked for the scope
the endpoint needs (403 SCOPE_MISSING). Every POST takes an `Idempotency-Key` (`idempotency.py`).

Sends reuse the outbound path: messaging's SendMessage stores the message PENDING and answers at once, its sender
delivers it. n8n sends as the automation (`sender {kind: automation, id: apikey:<id>, name: n8n}`, priority
`automation`) with this service's token naming the key's tenant; a guest named by `to` (a phone number or a BSUID)
is found or created with the conversation service's ResolveInboundContacts (`echo`: no window is opened, a resolved
conversation stays as it is). Conversation reads and changes go to the conversation service with the key's token.
"""


import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import grpc
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from eva_common.apikeys import ApiKeyTokens
from eva_common.auth import Principal, ServiceTokenProvider, TokenVerifier
from eva_common.errors import AlreadyExists, DomainError, InvalidArgument, NotFound, Unauthenticated, Unavailable
from eva_common.grpc.client import domain_error_from_rpc
from eva_common.http.problem import PROBLEM_MEDIA_TYPE
from eva_common.identity import (
    SCOPE_CONVERSATIONS_READ,
    SCOPE_CONVERSATIONS_WRITE,
    SCOPE_MESSAGES_READ,
    SCOPE_MESSAGES_SEND,
)
from eva_common.ratelimit import HitCounter, Limit, RateLimiter, rate_limited
from eva_common.settings import ConfigurationError, require_real_secret
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from redis.exceptions import RedisError

from n8n_service.event_log import EventLog
from n8n_service.idempotency import Claim, IdempotencyStore, StoredAnswer, check_key, request_fingerprint
from n8n_service.peers import Peers
from n8n_service.views import conversation_view, message_view

logger = logging.getLogger(__name__)

PREFIX = "/n8n"
API_KEY_HEADER = "X-Api-Key"
MINUTE = 60
AUTOMATION_NAME = "n8n"
RECENT_MESSAGES_DEFAULT = 20
NEW_TAG_COLOR = "#6b7280"  # a tag n8n names that does not exist yet is created with this color
RECENT_MESSAGES_MAX = 100
EVENTS_PAGE_DEFAULT = 100
EVENTS_PAGE_MAX = 500
_PHONE_SEPARATORS = re.compile(r"[\s().\-]")
_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{1,120}$")

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, scheme_name="apiKey",
    description="An API key of the tenant (`eva_<prefix>_<secret>`), from `POST /api/tenant/api-keys` at the "
                "gateway; also accepted as `Authorization: ApiKey <key>`. Each endpoint names the scope it needs.")


# --- pure rules ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Recipient:
    wa_id: str = ""  # a phone number's digits (Meta's wa_id)
    user_id: str = ""  # a BSUID (Meta's business-scoped user id)


def parse_recipient(to: str) -> Recipient:
    """`to` as a guest: a phone number in international form (`+15551234567`, separators allowed: 8-15 digits) or
    a BSUID (`US.13491208655302741918`); 400 RECIPIENT_INVALID otherwise."""
    value = to.strip()
    if _BSUID.match(value):
        return Recipient(user_id=value)
    digits = _PHONE_SEPARATORS.sub("", value)
    digits = digits[1:] if digits.startswith("+") else digits.removeprefix("00")
    if digits.isdigit() and 8 <= len(digits) <= 15 and not digits.startswith("0"):
        return Recipient(wa_id=digits)
    raise InvalidArgument("`to` must be a phone number with its country code (+15551234567) or a BSUID",
                          code="RECIPIENT_INVALID")


def _parameters(values: list[str] | dict[str, str]) -> list[dict[str, str]]:
    if isinstance(values, dict):
        return [{"type": "text", "parameterName": name, "text": text} for name, text in values.items()]
    return [{"type": "text", "text": text} for text in values]


def template_content(name: str, language: str, parameters: list[str] | dict[str, str] | None,
                     header_parameters: list[str] | dict[str, str] | None,
                     components: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The template message messaging takes (`{name, language: {code}, components}`): a list of parameters is the
    body's positional `{{1}}…`, a map its NAMED ones; `components` (Meta's, camelCase) is taken as it is."""
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components is not None:
        content["components"] = components
        return content
    built = []
    if header_parameters:
        built.append({"type": "header", "parameters": _parameters(header_parameters)})
    if parameters:
        built.append({"type": "body", "parameters": _parameters(parameters)})
    if built:
        content["components"] = built
    return content


def messaging_key(api_key_id: str, key: str) -> str:
    """The Idempotency-Key messaging is given for a send: per API key (messaging's keys are per tenant), so a retry
    that redoes a send whose answer was lost is answered the first message, never a second one."""
    return "n8n:" + hashlib.sha256(f"{api_key_id}\n{key}".encode()).hexdigest()


def problem_body(error: DomainError) -> dict[str, Any]:
    return {"type": f"https://eva.dev/problems/{error.code.lower().replace('_', '-')}", "title": error.title,
            "status": error.http_status, "detail": error.detail, "code": error.code, **error.extra}


# --- bodies -------------------------------------------------------------------------------------------------------

class CamelIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Target(CamelIn):
    conversation_id: str | None = Field(default=None, min_length=1, max_length=128)
    to: str | None = Field(default=None, min_length=1, max_length=128, description=(
        "A guest's phone number (+15551234567) or BSUID; the contact and conversation are created when missing"))

    @model_validator(mode="after")
    def _one_target(self) -> "_Target":
        if (self.conversation_id is None) == (self.to is None):
            raise ValueError("give exactly one of conversationId and to")
        return self


class MessageIn(_Target):
    """Any body `POST /api/messages` takes (the type's object under the key named by `type`), addressed to a
    conversation (`conversationId`) or a guest (`to`)."""

    type: Literal["text", "image", "audio", "video", "document", "sticker", "location", "contacts", "template",
                  "interactive", "reaction"]
    reply_to_message_id: str | None = Field(default=None, max_length=128)
    priority: Literal["attendant", "automation", "bulk"] | None = Field(
        default=None, description="automation (the default), attendant or bulk")
    text: dict[str, Any] | None = Field(default=None, description="{body, previewUrl?}")
    image: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?}")
    audio: dict[str, Any] | None = Field(default=None, description="{mediaId | link}")
    video: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?}")
    document: dict[str, Any] | None = Field(default=None, description="{mediaId | link, caption?, filename?}")
    sticker: dict[str, Any] | None = Field(default=None, description="{mediaId | link}")
    location: dict[str, Any] | None = Field(default=None, description="{latitude, longitude, name?, address?}")
    contacts: list[Any] | None = Field(default=None, description="Meta's contact objects")
    template: dict[str, Any] | None = Field(default=None, description="{name, language: {code}, components?}")
    interactive: dict[str, Any] | None = Field(default=None, description="buttons, lists, cta_url")
    reaction: dict[str, Any] | None = Field(default=None, description="{messageId, emoji}")

    def content(self) -> Any:
        return getattr(self, self.type)


class TemplateIn(_Target):
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=1, max_length=32, description="The template's language code (en_US)")
    parameters: list[str] | dict[str, str] | None = Field(default=None, description=(
        "The body's parameters: a list for positional ones ({{1}}, {{2}}…), a map for NAMED ones"))
    header_parameters: list[str] | dict[str, str] | None = Field(default=None, description="A text header's")
    components: list[dict[str, Any]] | None = Field(default=None, description=(
        "Meta's components (camelCase) as they are, instead of parameters/headerParameters"))
    priority: Literal["attendant", "automation", "bulk"] | None = None

    @model_validator(mode="after")
    def _components_or_parameters(self) -> "TemplateIn":
        if self.components is not None and (self.parameters is not None or self.header_parameters is not None):
            raise ValueError("give components or parameters, not both")
        return self


class ConversationPatchIn(CamelIn):
    status: Literal["open", "pending", "resolved"] | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None

    @model_validator(mode="after")
    def _something(self) -> "ConversationPatchIn":
        if self.status is None and self.priority is None:
            raise ValueError("give status or priority")
        return self


class AssignIn(CamelIn):
    attendant_id: str | None = Field(min_length=1, max_length=128,
                                     description="An active user of the tenant, or null to unassign")


class EscalationIn(CamelIn):
    reason: str = Field(min_length=1, max_length=2000)
    priority: Literal["low", "normal", "high", "urgent"] | None = None


# --- the API ------------------------------------------------------------------------------------------------------

ConversationIdPath = Annotated[str, Path(min_length=1, max_length=128)]
IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=255,
    description="Per API key, for 24 hours: the same key and body answer the first answer again (status and body, "
                "`Idempotent-Replayed: true`) and do nothing again; a concurrent request with the key waits for the "
                "first one's answer (up to EVA_N8N_IDEMPOTENCY_WAIT_SECONDS, then 409 IDEMPOTENCY_IN_PROGRESS with "
                "Retry-After); another body is 422 IDEMPOTENCY_KEY_REUSED. Answers 5xx, 408, 409 and 429 are not "
                "kept: a retry does the work again.")]
TagPath = Annotated[str, Path(min_length=1, max_length=64, description="A tag's id or name")]


@dataclass(frozen=True, slots=True)
class ApiLimits:
    per_key_per_minute: int
    exchanges_per_ip_per_minute: int


class N8nApi:
    def __init__(self, *, peers: Peers, verifier: TokenVerifier, limiter: HitCounter, limits: ApiLimits,
                 idempotency: IdempotencyStore, events: EventLog, api_key_cache_entries: int = 10_000) -> None:
        self.peers = peers
        self.events = events
        self._verifier = verifier
        self._limiter = limiter
        self._key_limit = Limit(limits.per_key_per_minute, MINUTE)
        self._exchange_limit = Limit(limits.exchanges_per_ip_per_minute, MINUTE)
        self.idempotency = idempotency
        self.api_keys = ApiKeyTokens(exchange=peers.exchange_api_key, verify=self._verify,
                                     before_exchange=self._count_exchange, max_entries=api_key_cache_entries)

    # --- authentication and limits ---
    async def _verify(self, token: str) -> Principal:
        try:
            return await self._verifier.verify(token)
        except grpc.aio.AioRpcError as error:  # the JWKS could not be fetched from auth
            raise domain_error_from_rpc(error) from error
        except RedisError as error:
            raise Unavailable("token revocations cannot be checked", code="UPSTREAM_UNAVAILABLE") from error

    async def _hit(self, name: str, key: str, limit: Limit, detail: str) -> None:
        try:
            decision = await self._limiter.hit(name, key, limit)
        except RedisError as error:
            raise Unavailable("the rate limiter is unavailable", code="UPSTREAM_UNAVAILABLE") from error
        if not decision.allowed:
            raise rate_limited(decision, detail)

    async def _count_exchange(self, ip: str) -> None:
        await self._hit("n8n-exchange-ip", ip, self._exchange_limit, "too many API-key exchanges from this address")

    async def authenticate(self, request: Request) -> Principal:
        key = request.headers.get(API_KEY_HEADER, "").strip()
        scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "apikey" and value.strip():
            if key and key != value.strip():
                raise InvalidArgument("two different API keys were sent", code="AMBIGUOUS_CREDENTIALS")
            key = value.strip()
        if not key:
            raise Unauthenticated("an API key is required (X-Api-Key)", code="API_KEY_REQUIRED")
        ip = request.client.host if request.client else "unknown"
        principal = await self.api_keys.principal(key, client_ip=ip)
        await self._hit("n8n-key", principal.subject, self._key_limit, "too many requests with this API key")
        return principal

    # --- idempotent POSTs ---
    async def idempotent(self, request: Request, principal: Principal, body: BaseModel | None, status_code: int,
                         work: Callable[[str], Awaitable[dict[str, Any]]]) -> JSONResponse:
        """Runs `work` once per Idempotency-Key (given to it, "" without one) and answers its result; a repeated
        key answers the first result (`Idempotent-Replayed: true`)."""
        header = request.headers.get("idempotency-key")
        if header is None:
            return JSONResponse(await work(""), status_code=status_code)
        key = check_key(header)
        tenant_id = principal.require_tenant()
        fingerprint = request_fingerprint(
            request.method, request.url.path,
            body.model_dump(mode="json", by_alias=True, exclude_none=True) if body is not None else None)
        outcome = await self.idempotency.claim(tenant_id=tenant_id, api_key_id=principal.subject, key=key,
                                               fingerprint=fingerprint)
        if isinstance(outcome, StoredAnswer):
            return JSONResponse(outcome.body, status_code=outcome.status, headers={"Idempotent-Replayed": "true"},
                                media_type=PROBLEM_MEDIA_TYPE if outcome.status >= 400 else None)
        try:
            result = await work(messaging_key(principal.subject, key))
        except DomainError as error:
            await self._settle(outcome, error.http_status, problem_body(error))
            raise
        except BaseException:
            await self._settle(outcome, 500, None)
            raise
        await self._settle(outcome, status_code, result)
        return JSONResponse(result, status_code=status_code)

    async def _settle(self, claim: Claim, status: int, body: Any) -> None:
        try:  # shielded: a cancelled request still stores (or releases) its key
            await asyncio.shield(self.idempotency.finish(claim, status=status, body=body))
        except Exception:
            logger.exception("idempotency key not settled (its lease will run out)")

    # --- use cases ---
    async def _resolve(self, principal: Principal, target: _Target) -> str:
        if target.conversation_id is not None:
            return target.conversation_id
        recipient = parse_recipient(target.to or "")
        answer: conversation_pb2.ResolveInboundContactsResponse = await self.peers.as_service(
            self.peers.conversation.ResolveInboundContacts,
            conversation_pb2.ResolveInboundContactsRequest(contacts=[conversation_pb2.ResolveInboundContactRequest(
                tenant_id=principal.require_tenant(), wa_id=recipient.wa_id, user_id=recipient.user_id,
                echo=True)]))
        resolved = answer.contacts[0]
        if resolved.contact_created or resolved.conversation_created:
            logger.info("n8n send opened a guest", extra={
                "tenant_id": principal.tenant_id, "conversation_id": resolved.conversation.id,
                "contact_created": resolved.contact_created})
        return str(resolved.conversation.id)

    async def send(self, principal: Principal, target: _Target, *, type_: str, content: Any,
                   reply_to: str | None, priority: str | None, messaging_idempotency_key: str) -> dict[str, Any]:
        principal.require_scope(SCOPE_MESSAGES_SEND)
        conversation_id = await self._resolve(principal, target)
        answer: messaging_pb2.SendMessageResponse = await self.peers.as_service(
            self.peers.messaging.SendMessage,
            messaging_pb2.SendMessageRequest(
                conversation_id=conversation_id, type=type_,
                content_json=json.dumps(content, ensure_ascii=False) if content is not None else "",
                reply_to_message_id=reply_to or "", idempotency_key=messaging_idempotency_key,
                sender=messaging_pb2.Sender(kind="automation", id=principal.subject, name=AUTOMATION_NAME),
                priority=priority or "automation", tenant_id=principal.require_tenant()))
        return message_view(answer.message)

    async def conversation(self, principal: Principal, conversation_id: str) -> conversation_pb2.Conversation:
        principal.require_scope(SCOPE_CONVERSATIONS_READ)
        conversation: conversation_pb2.Conversation = await self.peers.call(
            self.peers.conversation.GetConversation,
            conversation_pb2.GetConversationRequest(conversation_id=conversation_id), token=principal.token)
        return conversation

    async def recent_messages(self, principal: Principal, conversation_id: str, count: int) -> list[dict[str, Any]]:
        """The conversation's last `count` messages, oldest first."""
        principal.require_scope(SCOPE_MESSAGES_READ)
        page: messaging_pb2.ListMessagesResponse = await self.peers.call(
            self.peers.messaging.ListMessages,
            messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, limit=count, latest=True),
            token=principal.token)
        return [message_view(message) for message in page.items]

    async def tag_id(self, principal: Principal, tag: str, *, create: bool) -> str:
        """A tag's id from its id or name (case-insensitive); an unknown name is created when `create`."""
        tags: conversation_pb2.ListTagsResponse = await self.peers.call(
            self.peers.conversation.ListTags, conversation_pb2.ListTagsRequest(), token=principal.token)
        for item in tags.items:
            if item.id == tag or item.name.lower() == tag.lower():
                return str(item.id)
        if not create:
            raise NotFound("tag not found", code="TAG_NOT_FOUND")
        try:
            created: conversation_pb2.Tag = await self.peers.call(
                self.peers.conversation.CreateTag, conversation_pb2.CreateTagRequest(name=tag, color=NEW_TAG_COLOR),
                token=principal.token)
        except AlreadyExists:  # made meanwhile by a concurrent call: it is there now
            return await self.tag_id(principal, tag, create=False)
        logger.info("n8n created a tag", extra={"tenant_id": principal.tenant_id, "tag_id": created.id})
        return str(created.id)


def n8n_router(api: N8nApi) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["n8n"])

    async def caller(request: Request, _key: str | None = Depends(api_key_scheme)) -> Principal:
        return await api.authenticate(request)

    Caller = Annotated[Principal, Depends(caller)]
    problems: dict[int | str, dict[str, Any]] = {
        status: {"description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status, description in ((400, "Invalid request"), (401, "API key missing, unknown or revoked"),
                                    (403, "The key lacks the scope"), (404, "Not found (or another tenant's)"),
                                    (409, "IDEMPOTENCY_IN_PROGRESS (Retry-After)"),
                                    (422, "Refused (WINDOW_CLOSED, IDEMPOTENCY_KEY_REUSED, …)"),
                                    (429, "RATE_LIMITED (Retry-After)"))}

    @router.post("/message", status_code=201, responses=problems, summary=(
        "Send any message type to a conversation or a guest (scope messages:send); stored PENDING, answered at once"))
    async def send_message(body: MessageIn, request: Request, principal: Caller,
                           _idempotency_key: IdempotencyHeader = None) -> JSONResponse:
        return await api.idempotent(request, principal, body, 201, lambda key: api.send(
            principal, body, type_=body.type, content=body.content(), reply_to=body.reply_to_message_id,
            priority=body.priority, messaging_idempotency_key=key))

    @router.post("/template", status_code=201, responses=problems, summary=(
        "Send a template by name, language and parameters (scope messages:send); opens the window"))
    async def send_template(body: TemplateIn, request: Request, principal: Caller,
                           _idempotency_key: IdempotencyHeader = None) -> JSONResponse:
        content = template_content(body.name, body.language, body.parameters, body.header_parameters,
                                   body.components)
        return await api.idempotent(request, principal, body, 201, lambda key: api.send(
            principal, body, type_="template", content=content, reply_to=None, priority=body.priority,
            messaging_idempotency_key=key))

    @router.get("/conversation/{conversation_id}", responses=problems, summary=(
        "A conversation with its contact, status, assignee, tags, window and recent messages (scopes "
        "conversations:read, and messages:read when messages > 0)"))
    async def get_conversation(
        conversation_id: ConversationIdPath, principal: Caller,
        messages: Annotated[int, Query(ge=0, le=RECENT_MESSAGES_MAX)] = RECENT_MESSAGES_DEFAULT,
    ) -> dict[str, Any]:
        view = conversation_view(await api.conversation(principal, conversation_id))
        view["messages"] = await api.recent_messages(principal, conversation_id, messages) if messages else []
        return view

    @router.get("/conversations", responses=problems, summary=(
        "Conversations of the guest with this phone number, latest activity first (scope conversations:read)"))
    async def find_conversations(phone: Annotated[str, Query(min_length=3, max_length=32)],
                                 principal: Caller) -> dict[str, Any]:
        principal.require_scope(SCOPE_CONVERSATIONS_READ)
        wa_id = parse_recipient(phone).wa_id
        if not wa_id:
            raise InvalidArgument("phone must be a phone number with its country code", code="RECIPIENT_INVALID")
        page: conversation_pb2.ListConversationsResponse = await api.peers.call(
            api.peers.conversation.ListConversations,
            conversation_pb2.ListConversationsRequest(q=wa_id, limit=100), token=principal.token)
        items = [conversation_view(item) for item in page.items
                 if item.contact.wa_id == wa_id or item.contact.phone == f"+{wa_id}"]
        return {"items": items}

    @router.get("/events", responses=problems, summary=(
        "The tenant's events after a seq, oldest first, for flows that poll: the envelopes webhooks carry (scopes "
        "conversations:read and messages:read)"))
    async def events(principal: Caller, after_seq: Annotated[int, Query(alias="afterSeq", ge=0)] = 0,
                     limit: Annotated[int, Query(ge=1, le=EVENTS_PAGE_MAX)] = EVENTS_PAGE_DEFAULT) -> dict[str, Any]:
        principal.require_scope(SCOPE_CONVERSATIONS_READ)
        principal.require_scope(SCOPE_MESSAGES_READ)
        page = await api.events.page(tenant_id=principal.require_tenant(), after_seq=after_seq, limit=limit)
        return {"items": page.items, "nextAfterSeq": page.next_after_seq, "oldestSeq": page.oldest_seq,
                "newestSeq": page.newest_seq}

    @router.patch("/conversation/{conversation_id}", responses=problems, summary=(
        "Change a conversation's status or priority (scope conversations:write)"))
    async def update_conversation(conversation_id: ConversationIdPath, body: ConversationPatchIn,
                                  principal: Caller) -> dict[str, Any]:
        principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
        changes = {name: value for name in ("status", "priority") if (value := getattr(body, name)) is not None}
        conversation: conversation_pb2.Conversation = await api.peers.call(
            api.peers.conversation.UpdateConversation,
            conversation_pb2.UpdateConversationRequest(conversation_id=conversation_id, **changes),
            token=principal.token)
        return conversation_view(conversation)

    @router.post("/conversation/{conversation_id}/assign", responses=problems, summary=(
        "Assign the conversation to a user (a bot hands the guest to a person), or unassign it with null "
        "(scope conversations:write)"))
    async def assign(conversation_id: ConversationIdPath, body: AssignIn, request: Request,
                     principal: Caller, _idempotency_key: IdempotencyHeader = None) -> JSONResponse:
        async def work(_: str) -> dict[str, Any]:
            principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
            conversation: conversation_pb2.Conversation = await api.peers.call(
                api.peers.conversation.AssignConversation,
                conversation_pb2.AssignConversationRequest(conversation_id=conversation_id,
                                                           attendant_id=body.attendant_id or ""),
                token=principal.token)
            return conversation_view(conversation)

        return await api.idempotent(request, principal, body, 200, work)

    @router.post("/conversation/{conversation_id}/tags/{tag}", responses=problems, summary=(
        "Tag the conversation (a tag's id or name; an unknown name is created) (scope conversations:write)"))
    async def attach_tag(conversation_id: ConversationIdPath, tag: TagPath, request: Request,
                         principal: Caller, _idempotency_key: IdempotencyHeader = None) -> JSONResponse:
        async def work(_: str) -> dict[str, Any]:
            principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
            await api.conversation(principal, conversation_id)  # another tenant's id is 404 before a tag is made
            tag_id = await api.tag_id(principal, tag, create=True)
            conversation: conversation_pb2.Conversation = await api.peers.call(
                api.peers.conversation.AttachTag,
                conversation_pb2.AttachTagRequest(conversation_id=conversation_id, tag_id=tag_id),
                token=principal.token)
            return conversation_view(conversation)

        return await api.idempotent(request, principal, None, 200, work)

    @router.delete("/conversation/{conversation_id}/tags/{tag}", responses=problems, summary=(
        "Remove a tag from the conversation (scope conversations:write)"))
    async def detach_tag(conversation_id: ConversationIdPath, tag: TagPath, principal: Caller) -> dict[str, Any]:
        principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
        tag_id = await api.tag_id(principal, tag, create=False)
        conversation: conversation_pb2.Conversation = await api.peers.call(
            api.peers.conversation.DetachTag,
            conversation_pb2.DetachTagRequest(conversation_id=conversation_id, tag_id=tag_id), token=principal.token)
        return conversation_view(conversation)

    @router.post("/conversation/{conversation_id}/escalations", status_code=201, responses=problems, summary=(
        "Raise an escalation on the conversation (scope conversations:write)"))
    async def raise_escalation(conversation_id: ConversationIdPath, body: EscalationIn, request: Request,
                               principal: Caller, _idempotency_key: IdempotencyHeader = None) -> JSONResponse:
        async def work(_: str) -> dict[str, Any]:
            principal.require_scope(SCOPE_CONVERSATIONS_WRITE)
            escalation: conversation_pb2.Escalation = await api.peers.call(
                api.peers.conversation.RaiseEscalation,
                conversation_pb2.RaiseEscalationRequest(conversation_id=conversation_id, reason=body.reason,
                                                        priority=body.priority or ""),
                token=principal.token)
            return _escalation_view(escalation)

        return await api.idempotent(request, principal, body, 201, work)

    return router


def _escalation_view(escalation: conversation_pb2.Escalation) -> dict[str, Any]:
    return {"id": escalation.id, "tenantId": escalation.tenant_id, "conversationId": escalation.conversation_id,
            "reason": escalation.reason, "priority": escalation.priority, "status": escalation.status,
            "raisedBy": escalation.raised_by or None, "createdAt": escalation.created_at or None}


def build_api(app: Any, settings: Any, *, sessions: Any, redis: Any, auth_channel: Any, verifier: TokenVerifier,
              tokens: Any = None) -> N8nApi:
    """The /n8n API's parts, built for the composition root (`app`: its ServiceApp, which closes them) on the root's
    Redis (revocations, rate limits), auth channel (service token, key exchanges) and token verifier: the peers and
    the idempotency store. Nothing connects here. `tokens` is injectable for tests."""
    if tokens is None:
        try:
            secret = require_real_secret("EVA_SERVICE_CLIENT_SECRET", settings.service_client_secret)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        tokens = ServiceTokenProvider(channel_factory=lambda: auth_channel, service_name=settings.service_name,
                                      client_secret=secret.get_secret_value(), timeout=settings.grpc_deadline_seconds)
    peers = Peers(auth=auth_channel, conversation_target=settings.conversation_grpc_target,
                  messaging_target=settings.messaging_grpc_target, service_tokens=tokens,
                  deadline_seconds=settings.grpc_deadline_seconds)
    app.on_close("peer channels", peers.close)
    api = N8nApi(
        peers=peers, verifier=verifier, limiter=RateLimiter(redis, prefix=settings.n8n_rate_limit_prefix),
        limits=ApiLimits(per_key_per_minute=settings.n8n_rate_limit_per_minute,
                         exchanges_per_ip_per_minute=settings.n8n_key_exchanges_per_ip_per_minute),
        idempotency=IdempotencyStore(sessions=sessions, ttl_seconds=settings.n8n_idempotency_ttl_seconds,
                                     lease_seconds=settings.n8n_idempotency_lease_seconds,
                                     wait_seconds=settings.n8n_idempotency_wait_seconds),
        events=EventLog(sessions=sessions), api_key_cache_entries=settings.n8n_api_key_cache_max_entries)
    return api
