"""API keys on the inbox routes: reads take `conversations:read` (messages and media: `messages:read`), changes
`conversations:write`; a key without the scope is 403 SCOPE_MISSING before any upstream call, and the exchanged token
(never the key) is what the upstream sees."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2

pytestmark = pytest.mark.integration

READ, WRITE, MESSAGES = "conversations:read", "conversations:write", "messages:read"


def code_of(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, response.json()["code"]


def _upstream_calls(directory: Any) -> int:
    """Calls the fakes received, the API-key exchanges at auth aside."""
    return sum(1 for method, _ in directory.forwarded_metadata if method != "ExchangeApiKey")


def _routes(conversation_id: str, tag_id: str, escalation_id: str, contact_id: str, message_id: str
            ) -> list[tuple[str, str, str, dict[str, Any] | None, int]]:
    """(scope, method, path, body, success status) of every inbox route."""
    conversation = f"/api/conversations/{conversation_id}"
    return [
        (READ, "GET", "/api/conversations", None, 200),
        (READ, "GET", conversation, None, 200),
        (READ, "GET", "/api/tags", None, 200),
        (READ, "GET", "/api/escalations", None, 200),
        (READ, "GET", "/api/contacts", None, 200),
        (READ, "GET", f"/api/contacts/{contact_id}", None, 200),
        (MESSAGES, "GET", f"{conversation}/messages", None, 200),
        (MESSAGES, "GET", f"/api/messages/{message_id}/media", None, 200),
        (WRITE, "PATCH", conversation, {"priority": "high"}, 200),
        (WRITE, "POST", f"{conversation}/assign", {"attendantId": None}, 200),
        (WRITE, "POST", f"{conversation}/tags/{tag_id}", None, 200),
        (WRITE, "DELETE", f"{conversation}/tags/{tag_id}", None, 200),
        (WRITE, "POST", "/api/tags", {"name": f"tag-{conversation_id}"}, 201),
        (WRITE, "PATCH", f"/api/tags/{tag_id}", {"color": "#010203"}, 200),
        (WRITE, "POST", "/api/escalations", {"conversationId": conversation_id, "reason": "VIP"}, 201),
        (WRITE, "POST", f"/api/escalations/{escalation_id}/acknowledge", None, 200),
        (WRITE, "POST", f"/api/escalations/{escalation_id}/resolve", {"note": "done"}, 200),
        (WRITE, "POST", "/api/contacts", {"name": "Guest", "phone": "447700900123"}, 201),
        (WRITE, "PATCH", f"/api/contacts/{contact_id}", {"name": "Guest Two"}, 200),
        (WRITE, "DELETE", f"/api/tags/{tag_id}", None, 204),  # last: the tag is gone afterwards
    ]


async def test_the_api_key_matrix_of_the_inbox_routes(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    account = make_account()
    tenant = account.tenant_id
    conversation_id, tag_id, escalation_id, contact_id, message_id = (
        f"conv-km-{tenant}", f"tag-km-{tenant}", f"esc-km-{tenant}", f"ct-km-{tenant}", f"m-km-{tenant}")
    seed_conversation(account, conversation_id)
    directory.tags[tenant] = {tag_id: conversation_pb2.Tag(id=tag_id, name="km")}
    directory.escalations[escalation_id] = conversation_pb2.Escalation(
        id=escalation_id, tenant_id=tenant, conversation_id=conversation_id, reason="r", priority="low", status="open")
    directory.contacts[contact_id] = conversation_pb2.Contact(id=contact_id, tenant_id=tenant, name="K",
                                                              phone="351910000555")
    directory.messages[conversation_id].append(messaging_pb2.Message(
        id=message_id, tenant_id=tenant, conversation_id=conversation_id, direction="inbound", type="image",
        status="RECEIVED", media=messaging_pb2.Media(status="ready", mime_type="image/png", size=3,
                                                     sha256=hashlib.sha256(b"png").hexdigest())))
    directory.media[message_id] = b"png"
    routes = _routes(conversation_id, tag_id, escalation_id, contact_id, message_id)
    keys = {scope: directory.add_api_key(tenant_id=tenant, scopes=[scope])[1] for scope in (READ, WRITE, MESSAGES)}

    # every key without the route's scope is refused before the route's upstream is called
    for scope, method, path, body, _ in routes:
        for other, secret in keys.items():
            if other == scope:
                continue
            calls = _upstream_calls(directory)
            response = await http.request(method, path, json=body, headers={"X-Api-Key": secret})
            assert code_of(response) == (403, "SCOPE_MISSING"), (other, method, path)
            assert _upstream_calls(directory) == calls, (method, path)

    # the key with the scope is served, and the upstream sees the exchanged token, never the key
    for scope, method, path, body, success in routes:
        secret = keys[scope]
        response = await http.request(method, path, json=body, headers={"Authorization": f"ApiKey {secret}"})
        assert response.status_code == success, (method, path, response.text)
        forwarded = directory.forwarded_metadata[-1][1]["authorization"]
        assert forwarded.startswith("Bearer ey") and secret not in forwarded, (method, path)
    assert directory.escalations[escalation_id].status == "resolved"
    assert tag_id not in directory.tags[tenant]


async def test_a_key_of_another_tenant_sees_nothing(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any, seed_conversation: Callable[..., None]
) -> None:
    directory = upstreams.directory
    owner, other = make_account(), make_account()
    conversation_id = f"conv-kx-{owner.tenant_id}"
    seed_conversation(owner, conversation_id)
    _, secret = directory.add_api_key(tenant_id=other.tenant_id, scopes=[READ, WRITE])
    listed = await http.get("/api/conversations", headers={"X-Api-Key": secret})
    assert listed.status_code == 200 and listed.json() == {"items": [], "nextCursor": None}
    assert code_of(await http.patch(f"/api/conversations/{conversation_id}", json={"status": "resolved"},
                                    headers={"X-Api-Key": secret})) == (404, "CONVERSATION_NOT_FOUND")
    assert directory.conversations[conversation_id].status == "open"
