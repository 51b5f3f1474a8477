"""Socket.io at the edge: authenticated sockets in per-tenant, per-user and per-conversation rooms.

Events reach the rooms through the Redis manager (channel `eva-socketio`), so the realtime service, which emits with
a write-only manager, and every gateway replica share them. The socket's session (user, tenant, role, token expiry)
is the only replica-local state.

A socket's token is checked on the handshake and on `authenticate` (signature, expiry and the user's revocation
time in Redis), and again by the periodic sweep: a socket whose token expired or was revoked since is signed out
of its rooms and told so (`auth:expired {code: TOKEN_EXPIRED | TOKEN_REVOKED}`).

Client → server events answer with an ack `{ok: true, …}` or `{ok: false, code}`; a malformed payload is an error
ack, never a crash. A socket without a valid token is in no room and must `authenticate` within the auth timeout
(counted from the handshake, or from the moment its token expired) or it is disconnected. Every client event
(`authenticate` too) passes the socket's token bucket first: over it, `{ok: false, code: "RATE_LIMITED",
retryAfterMs}`.

Seq-bearing events reach each signed-in socket once and in order through the delivery gate (socket_delivery.py);
`resume {lastSeq}` replays what the socket missed from the tenant's replay buffer. Presence (socket_presence.py)
records each signed-in socket and announces `presence:update` on change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2
from eva_common.auth import Principal, TokenVerifier
from eva_common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from eva_common.realtime.rooms import conversation_room, tenant_room, user_room

from gateway.auth import verify_user_token
from gateway.client_context import ClientInfo, TrustedProxies, client_var
from gateway.clients import UpstreamClients
from gateway.socket_delivery import SocketDelivery
from gateway.socket_limits import SocketRateLimits
from gateway.socket_metrics import SOCKET_RATE_LIMITED, SOCKET_RESUMES, SOCKETS_CONNECTED
from gateway.socket_presence import SocketPresence

logger = logging.getLogger("gateway.sio")

NAMESPACE = "/"
EXPIRED_EVENT = "auth:expired"
MAX_ID_LENGTH = 128
CLOSE_TIMEOUT_SECONDS = 5.0

Ack = dict[str, Any]
EventHandler = Callable[[str, "SocketUser", Any], Awaitable[Ack]]


@dataclass(frozen=True, slots=True)
class SocketUser:
    """Who a socket belongs to, as kept in its Socket.io session."""

    user_id: str
    tenant_id: str
    role: str
    exp: int
    token: str
    issued_ms: int = 0  # compared with the user's revocation time by the sweep

    @classmethod
    def from_principal(cls, principal: Principal) -> SocketUser:
        return cls(
            user_id=principal.subject, tenant_id=principal.require_tenant(), role=principal.role,
            exp=principal.expires_at, token=principal.token, issued_ms=principal.issued_at_ms,
        )

    @classmethod
    def from_session(cls, session: dict[str, Any]) -> SocketUser | None:
        if not session.get("userId"):
            return None
        return cls(
            user_id=session["userId"], tenant_id=session["tenantId"], role=session["role"], exp=session["exp"],
            token=session["token"], issued_ms=int(session.get("iatMs", 0)),
        )

    def to_session(self) -> dict[str, Any]:
        return {"userId": self.user_id, "tenantId": self.tenant_id, "role": self.role, "exp": self.exp,
                "token": self.token, "iatMs": self.issued_ms}

    def public(self) -> dict[str, str]:
        return {"id": self.user_id, "tenantId": self.tenant_id, "role": self.role}


def _failure(code: str) -> Ack:
    return {"ok": False, "code": code}


def _last_seq(data: Any) -> int:
    value = data.get("lastSeq") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument("lastSeq must be a non-negative integer", code="VALIDATION_FAILED")
    return value


def _conversation_id(data: Any) -> str:
    value = data.get("conversationId") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise InvalidArgument("conversationId is required", code="VALIDATION_FAILED")
    return value.strip()


class SocketGateway:
    """Registers the Socket.io handlers on `server` and runs the expiry sweep."""

    def __init__(
        self,
        *,
        server: socketio.AsyncServer,
        verifier: TokenVerifier,
        clients: UpstreamClients,
        proxies: TrustedProxies,
        delivery: SocketDelivery,
        presence: SocketPresence,
        limits: SocketRateLimits,
        auth_timeout_seconds: float,
        sweep_interval_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self._verifier = verifier
        self._clients = clients
        self._typing_tasks: set[asyncio.Task[None]] = set()
        self._proxies = proxies
        self._delivery = delivery
        self._presence = presence
        self._limits = limits
        self._auth_timeout = auth_timeout_seconds
        self._sweep_interval = sweep_interval_seconds
        self._clock = clock
        self._deadlines: dict[str, asyncio.Task[None]] = {}
        self._peers: dict[str, ClientInfo] = {}  # who is behind each local socket, for upstream audit metadata
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        server.on("connect", self.on_connect)
        server.on("disconnect", self.on_disconnect)
        server.on("authenticate", self._guarded("authenticate", self.on_authenticate))
        server.on("join:conversation", self._event("join:conversation", self.on_join_conversation))
        server.on("leave:conversation", self._event("leave:conversation", self.on_leave_conversation))
        server.on("typing:start", self._event("typing:start", self._typing("typing:start")))
        server.on("typing:stop", self._event("typing:stop", self._typing("typing:stop")))
        server.on("resume", self._event("resume", self.on_resume))
        server.on("*", self.on_other_event)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="socket-expiry-sweep")
        self._delivery.start()
        self._presence.start()

    async def close(self) -> None:
        """Stops the sweep, signs this replica's sockets out of presence, disconnects them (clients reconnect
        elsewhere) and closes the Redis manager."""
        if self._closed:
            return
        self._closed = True
        await self._presence.close()
        await self._delivery.close()
        tasks = [task for task in (self._sweeper, *self._deadlines.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._deadlines.clear()
        self._peers.clear()
        for sid in self.local_sids():
            with contextlib.suppress(Exception):
                await self.server.disconnect(sid, ignore_queue=True)
        if self.server.eio.sockets:  # engine.io sessions too, so no long-poll or websocket holds the shutdown
            with contextlib.suppress(Exception):  # bounded: an abandoned long-poll must not hold the shutdown
                await asyncio.wait_for(self.server.eio.disconnect(), timeout=CLOSE_TIMEOUT_SECONDS)
        await self.server.shutdown()
        manager = self.server.manager
        listener = getattr(manager, "thread", None)
        if isinstance(listener, asyncio.Task):
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        redis = getattr(manager, "redis", None)
        if redis is not None:
            with contextlib.suppress(Exception):
                await redis.aclose()

    def local_sids(self) -> list[str]:
        return [sid for sid, _ in self.server.manager.get_participants(NAMESPACE, None)]

    # ------------------------------------------------------------------ connection

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        scope = environ.get("asgi.scope")
        if isinstance(scope, dict):
            self._peers[sid] = self._proxies.client_of(scope)
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            self._require_authentication(sid)
            SOCKETS_CONNECTED.inc()
            return True
        try:
            if not isinstance(token, str) or not token:
                raise Unauthenticated("the handshake token must be a string", code="TOKEN_INVALID")
            user = SocketUser.from_principal(await verify_user_token(self._verifier, token))
        except DomainError as error:
            self._peers.pop(sid, None)
            raise socketio.exceptions.ConnectionRefusedError(
                error.code, {"code": error.code, "detail": error.detail}
            ) from error
        try:
            await self._sign_in(sid, user)
        except Exception as error:  # Redis away: refused, the client retries
            logger.exception("could not sign a socket in", extra={"sid": sid})
            self._peers.pop(sid, None)
            await self._forget(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                "UNAVAILABLE", {"code": "UNAVAILABLE", "detail": "try again"}) from error
        SOCKETS_CONNECTED.inc()
        return True

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        SOCKETS_CONNECTED.dec()
        self._peers.pop(sid, None)
        deadline = self._deadlines.pop(sid, None)
        if deadline is not None:
            deadline.cancel()
        await self._forget(sid)

    async def _forget(self, sid: str) -> None:
        self._delivery.forget(sid)
        self._limits.forget(sid)
        try:
            await self._presence.signed_out(sid)
        except Exception:
            logger.exception("could not record a socket's sign-out in presence", extra={"sid": sid})

    async def on_authenticate(self, sid: str, data: Any) -> Ack:
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise InvalidArgument("token is required", code="VALIDATION_FAILED")
        user = SocketUser.from_principal(await verify_user_token(self._verifier, token))
        await self._sign_in(sid, user)
        return {"ok": True, "user": user.public()}

    async def _sign_in(self, sid: str, user: SocketUser) -> None:
        previous = await self.user_of(sid)
        if previous is not None and (previous.user_id, previous.tenant_id) != (user.user_id, user.tenant_id):
            await self._leave_all_rooms(sid)
        # The seq state first: the socket is delivered what comes after the tenant's seq read here.
        await self._delivery.track(sid, tenant_id=user.tenant_id, user_id=user.user_id)
        await self.server.save_session(sid, user.to_session())
        await self.server.enter_room(sid, tenant_room(user.tenant_id))
        await self.server.enter_room(sid, user_room(user.user_id))
        await self._presence.signed_in(sid, tenant_id=user.tenant_id, user_id=user.user_id)
        deadline = self._deadlines.pop(sid, None)
        if deadline is not None:
            deadline.cancel()

    async def user_of(self, sid: str) -> SocketUser | None:
        """The socket's user, or None when it has not authenticated (or has been signed out on expiry)."""
        return SocketUser.from_session(await self.server.get_session(sid))

    def _require_authentication(self, sid: str) -> None:
        """Disconnects the socket unless it authenticates within the auth timeout."""
        previous = self._deadlines.pop(sid, None)
        if previous is not None:
            previous.cancel()
        self._deadlines[sid] = asyncio.create_task(self._disconnect_unless_authenticated(sid))

    async def _disconnect_unless_authenticated(self, sid: str) -> None:
        await asyncio.sleep(self._auth_timeout)
        self._deadlines.pop(sid, None)
        try:
            if await self.user_of(sid) is None:
                logger.info("socket did not authenticate in time", extra={"sid": sid})
                await self.server.disconnect(sid)
        except KeyError:  # already gone
            return
        except Exception:
            logger.exception("could not disconnect an unauthenticated socket", extra={"sid": sid})

    async def _leave_all_rooms(self, sid: str) -> None:
        for room in self.server.rooms(sid):
            if room != sid:
                await self.server.leave_room(sid, room)

    # ------------------------------------------------------------------ expiry

    async def expire(self, sid: str, *, code: str = "TOKEN_EXPIRED") -> None:
        """The socket's token expired (or was revoked): out of every room, told so with `code`, and back on the
        authentication clock."""
        await self.server.save_session(sid, {})
        await self._leave_all_rooms(sid)
        self._delivery.pause(sid)
        self._require_authentication(sid)
        try:
            await self._presence.signed_out(sid)
        except Exception:
            logger.exception("could not record a socket's sign-out in presence", extra={"sid": sid})
        await self.server.emit(EXPIRED_EVENT, {"code": code}, to=sid)

    async def sweep(self) -> int:
        """Signs out every local socket whose token has expired or was revoked since it was verified; returns how
        many. The tokens were verified at sign-in: the sweep reads only the users' revocation times (one MGET per
        500 users), not each token again. A Redis outage is not a refusal: the sockets stay until a sweep can tell."""
        now = self._clock()
        signed_in: list[tuple[str, SocketUser]] = []
        for sid in self.local_sids():
            with contextlib.suppress(KeyError):  # disconnected meanwhile
                user = await self.user_of(sid)
                if user is not None:
                    signed_in.append((sid, user))
        try:
            revoked = await self._verifier.revocation_times({user.user_id for _, user in signed_in})
        except Exception:
            logger.warning("revocation times unavailable; the sweep checks expiry only", exc_info=True)
            revoked = {}
        ended = 0
        for sid, user in signed_in:
            if user.exp <= now:
                code = "TOKEN_EXPIRED"
            elif user.user_id in revoked and user.issued_ms < revoked[user.user_id]:
                code = "TOKEN_REVOKED"
            else:
                continue
            with contextlib.suppress(KeyError):
                await self.expire(sid, code=code)
                ended += 1
        return ended

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except Exception:
                logger.exception("socket expiry sweep failed")

    async def _current_user(self, sid: str) -> SocketUser:
        user = await self.user_of(sid)
        if user is None:
            raise Unauthenticated("authenticate first", code="UNAUTHENTICATED")
        if user.exp <= self._clock():
            await self.expire(sid)
            raise Unauthenticated("the access token expired; authenticate again", code="TOKEN_EXPIRED")
        return user

    # ------------------------------------------------------------------ events

    def _guarded(self, event: str, handler: Callable[[str, Any], Awaitable[Ack]]) -> Callable[..., Awaitable[Ack]]:
        """Turns any failure into an error ack: DomainError → its code, anything else → INTERNAL (logged)."""

        async def run(sid: str, *args: Any) -> Ack:
            limited = self._rate_limited(sid)
            if limited is not None:
                return limited
            peer = client_var.set(self._peers.get(sid))  # upstream calls forward the socket's client
            try:
                return await handler(sid, args[0] if args else None)
            except DomainError as error:
                return _failure(error.code)
            except Exception:
                logger.exception("socket event failed", extra={"event": event})
                return _failure("INTERNAL")
            finally:
                client_var.reset(peer)

        return run

    def _rate_limited(self, sid: str) -> Ack | None:
        retry_after_ms = self._limits.retry_after_ms(sid)
        if retry_after_ms is None:
            return None
        SOCKET_RATE_LIMITED.inc()
        return {"ok": False, "code": "RATE_LIMITED", "retryAfterMs": retry_after_ms}

    def _event(self, event: str, handler: EventHandler) -> Callable[..., Awaitable[Ack]]:
        """An event only an authenticated socket (with an unexpired token) may send."""

        async def authenticated(sid: str, data: Any) -> Ack:
            return await handler(sid, await self._current_user(sid), data)

        return self._guarded(event, authenticated)

    async def on_join_conversation(self, sid: str, user: SocketUser, data: Any) -> Ack:
        conversation_id = _conversation_id(data)
        try:
            conversation: conversation_pb2.Conversation = await self._clients.call(
                self._clients.conversation.GetConversation,
                conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
                token=user.token,
            )
        except NotFound as error:  # whatever the upstream's reason, a conversation the caller cannot see
            raise NotFound("conversation not found", code="NOT_FOUND") from error
        if conversation.tenant_id != user.tenant_id:
            raise NotFound("conversation not found", code="NOT_FOUND")
        await self.server.enter_room(sid, conversation_room(conversation_id))
        return {"ok": True}

    async def on_leave_conversation(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self.server.leave_room(sid, conversation_room(_conversation_id(data)))
        return {"ok": True}

    def _typing(self, event: str) -> EventHandler:
        async def relay(sid: str, user: SocketUser, data: Any) -> Ack:
            conversation_id = _conversation_id(data)
            room = conversation_room(conversation_id)
            if room not in self.server.rooms(sid):
                raise FailedPrecondition("join the conversation first", code="NOT_JOINED")
            await self.server.emit(
                event, {"conversationId": conversation_id, "userId": user.user_id}, room=room, skip_sid=sid
            )
            if event == "typing:start":
                self._typing_to_whatsapp(user, conversation_id)
            return {"ok": True}

        return relay

    def _typing_to_whatsapp(self, user: SocketUser, conversation_id: str) -> None:
        """Meta's typing indicator for the guest (messaging debounces it, checks the window and the tenant's policy);
        in the background: the ack never waits for Meta."""
        async def send() -> None:
            try:
                await self._clients.call(self._clients.messaging.SendTyping,
                                         messaging_pb2.SendTypingRequest(conversation_id=conversation_id),
                                         token=user.token)
            except DomainError as error:
                logger.info("typing indicator not sent", extra={"conversation_id": conversation_id,
                                                                "code": error.code})

        task = asyncio.create_task(send())
        self._typing_tasks.add(task)
        task.add_done_callback(self._typing_tasks.discard)

    async def on_resume(self, sid: str, user: SocketUser, data: Any) -> Ack:
        try:
            last_seq = _last_seq(data)
        except InvalidArgument:
            SOCKET_RESUMES.labels("invalid").inc()
            raise
        result = await self._delivery.resume(sid, last_seq=last_seq)
        if not result.complete:
            SOCKET_RESUMES.labels("resync").inc()
            return _failure("RESYNC_REQUIRED")
        SOCKET_RESUMES.labels("ok").inc()
        return {"ok": True, "replayed": result.replayed}

    async def on_other_event(self, event: str, sid: str, *args: Any) -> Ack:
        limited = self._rate_limited(sid)
        if limited is not None:
            return limited
        try:
            await self._current_user(sid)
        except DomainError as error:
            return _failure(error.code)
        except Exception:
            logger.exception("socket event failed", extra={"event": event})
            return _failure("INTERNAL")
        return _failure("UNKNOWN_EVENT")
