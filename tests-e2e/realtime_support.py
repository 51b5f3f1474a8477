"""Helpers of the live-inbox end-to-end tests (issue 5) driven with the frontend's own client (js_client.py): a
guest's message seen live, seq checks, short-lived access tokens signed with the test profile's key."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from e2e_support import Hotel, StackUrls, guest_writes, new_wa_id
from js_client import JsSocket, Received

SECRETS = Path(__file__).resolve().parent.parent / ".local" / "test" / "secrets.json"
SEQ_EVENTS = ("message:new", "conversation:updated", "message:status", "conversation:assigned", "message:updated",
              "escalation:raised", "escalation:updated")


@dataclass(frozen=True)
class GuestMessage:
    wamid: str
    conversation_id: str
    seq: int
    event: dict[str, Any]


async def guest_message(http: httpx.AsyncClient, stack: StackUrls, hotel: Hotel, watcher: JsSocket, text: str,
                        *, wa_id: str | None = None, timeout: float = 30.0) -> GuestMessage:
    """A guest writes to the hotel through the simulator; returns the message once `watcher` (a socket of the hotel)
    got its `message:new`."""
    sent = await guest_writes(http, stack, hotel.phone_number_id, text, wa_id=wa_id or new_wa_id())
    assert [a["status"] for a in sent["attempts"]] == [200], sent
    event = await watcher.wait_for("message:new", wamid_is(str(sent["wamid"])), timeout=timeout)
    return GuestMessage(wamid=str(sent["wamid"]), conversation_id=str(event["conversationId"]), seq=int(event["seq"]),
                        event=event)


async def settled(socket: JsSocket, message: GuestMessage, timeout: float = 30.0) -> dict[str, Any]:
    """Waits for the `conversation:updated` that follows a guest's message (the conversation service's new last
    message and unread count): after it, that message causes no more events, so the tenant's seq stands still."""
    data: dict[str, Any] = await socket.wait_for(
        "conversation:updated", lambda d: d.get("id") == message.conversation_id and d.get("seq", 0) > message.seq,
        timeout=timeout)
    return data


def differences(event: dict[str, Any], rest: dict[str, Any], path: str = "", *,
                extra: frozenset[str] = frozenset()) -> list[str]:
    """Where a socket event differs from the REST object it carries: the same fields (nested objects compared the
    same way) with equal values. `seq` is the event's own, and `extra` names other top-level fields only the event
    has (the guest's `contact` on `message:new`)."""
    found: list[str] = []
    own = {"seq", *extra} if not path else set()
    for key in sorted(set(event) - own - set(rest)):
        found.append(f"{path}{key}: only in the event")
    for key in sorted(set(rest) - set(event)):
        found.append(f"{path}{key}: only in REST")
    for key, value in event.items():
        if key in own or key not in rest:
            continue
        if isinstance(value, dict) and isinstance(rest[key], dict):
            found.extend(differences(value, rest[key], f"{path}{key}."))
        elif value != rest[key]:
            found.append(f"{path}{key}: event {value!r} != REST {rest[key]!r}")
    return found


def wamid_is(wamid: str) -> Callable[[Any], bool]:
    """A predicate for `wait_for`: the event of the message `wamid`."""
    return lambda data: isinstance(data, dict) and data.get("wamid") == wamid


def seqs(items: list[Received]) -> list[int]:
    return [int(item.data["seq"]) for item in items]


def assert_consecutive(numbers: list[int], what: str) -> None:
    """Strictly increasing by 1: nothing missing, nothing twice, nothing out of order."""
    assert numbers, f"{what}: no seq-bearing event"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (what, numbers)


def _b64url_json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def short_lived_token(genuine: str, *, lifetime_seconds: float) -> str:
    """A copy of the genuine access token `genuine` that expires `lifetime_seconds` from now (negative: already
    expired), signed like auth signs with the test profile's own key (kept by scripts/stack.py in
    .local/test/secrets.json): the only way to get a token that expires during a test, auth issuing 15-minute ones."""
    header_part, claims_part, _ = genuine.split(".")
    header, claims = _b64url_json(header_part), _b64url_json(claims_part)
    assert SECRETS.exists(), f"{SECRETS} is missing: is the test profile's stack running?"
    keys = json.loads(SECRETS.read_text())["jwt_signing_keys"]
    [signing] = [key for key in keys if key["kid"] == header["kid"]]
    private_key = load_pem_private_key(signing["private_key_pem"].encode(), password=None)
    now = time.time()
    issued = int(now) - 1
    expires = int(now + lifetime_seconds)
    minted = {**claims, "iat": issued, "iat_ms": int(now * 1000), "exp": expires, "jti": uuid.uuid4().hex}
    if "nbf" in claims:
        minted["nbf"] = issued
    token: str = jwt.encode(minted, private_key, algorithm=header["alg"],  # type: ignore[arg-type]
                            headers={"kid": header["kid"]})
    return token


def token_expiry(token: str) -> int:
    return int(_b64url_json(token.split(".")[1])["exp"])
