"""ListMessages and GetMessage: keyset pages ordered by (sent_at, id), and never another tenant's messages."""

from __future__ import annotations

import json
import secrets
import uuid

import grpc
import pytest
from eva.conversation.v1 import conversation_pb2
from eva.messaging.v1 import messaging_pb2

pytestmark = pytest.mark.integration


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def error_code(error: grpc.aio.AioRpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get("eva-error-code")


async def message_ids(owner_db, tenant_id: str) -> dict[str, tuple[str, str]]:
    """wamid -> (message id, conversation id) of a tenant."""
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows = await owner_db.fetch("SELECT wamid, id, conversation_id FROM messages")
    return {r["wamid"]: (str(r["id"]), str(r["conversation_id"])) for r in rows}


async def test_pages_follow_sent_at_then_arrival_and_other_tenants_see_nothing(
        stack, delivery, text_payload, issuer, owner_db) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    wa_id = "1650555" + str(secrets.randbelow(10**6)).zfill(6)
    # three messages in the same second (Meta's timestamps are seconds): arrival order breaks the tie
    later = text_payload(*[(wa_id, "Guest", f"wamid.B{i}", f"later {i}") for i in range(3)], timestamp="1749416400")
    earlier = text_payload((wa_id, "Guest", "wamid.A0", "earlier"), timestamp="1749416300")
    await stack.messaging.processor.process(delivery(later, tenant_id=tenant_a))
    await stack.messaging.processor.process(delivery(earlier, tenant_id=tenant_a))  # arrives late, sorts first
    ids = await message_ids(owner_db, tenant_a)
    message_id, conversation_id = ids["wamid.A0"]
    assert {conversation for _, conversation in ids.values()} == {conversation_id}

    user_a = auth(issuer.user_token(user_id="agent-a", tenant_id=tenant_a, role="attendant"))
    pages, cursor = [], ""
    while True:
        page = await stack.stub.ListMessages(
            messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, limit=2, cursor=cursor),
            metadata=user_a)
        pages.append([m.wamid for m in page.items])
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == [["wamid.A0", "wamid.B0"], ["wamid.B1", "wamid.B2"]]
    got = await stack.stub.GetMessage(messaging_pb2.GetMessageRequest(message_id=message_id), metadata=user_a)
    assert got.id == message_id and json.loads(got.content_json) == {"body": "earlier"}

    as_service = await stack.stub.ListMessages(
        messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, tenant_id=tenant_a, limit=100),
        metadata=auth(issuer.service_token(service="n8n")))
    assert [m.wamid for m in as_service.items] == ["wamid.A0", "wamid.B0", "wamid.B1", "wamid.B2"]
    assert all(m.tenant_id == tenant_a for m in as_service.items)

    user_b = auth(issuer.user_token(user_id="agent-b", tenant_id=tenant_b))
    not_found = [
        (stack.stub.ListMessages, messaging_pb2.ListMessagesRequest(conversation_id=conversation_id), user_b),
        (stack.stub.ListMessages,  # a user cannot name another tenant
         messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, tenant_id=tenant_a), user_b),
        (stack.stub.GetMessage, messaging_pb2.GetMessageRequest(message_id=message_id), user_b),
        (stack.stub.GetMessage, messaging_pb2.GetMessageRequest(message_id=message_id, tenant_id=tenant_a), user_b),
        (stack.stub.ListMessages,
         messaging_pb2.ListMessagesRequest(conversation_id=conversation_id, tenant_id=tenant_b),
         auth(issuer.service_token(service="n8n"))),
        (stack.stub.ListMessages, messaging_pb2.ListMessagesRequest(conversation_id="'; DROP TABLE messages"),
         user_a),
        (stack.stub.ListMessages, messaging_pb2.ListMessagesRequest(conversation_id=str(uuid.uuid4())), user_a),
        (stack.stub.GetMessage, messaging_pb2.GetMessageRequest(message_id="x"), user_a),
    ]
    for method, request, metadata in not_found:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await method(request, metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND, request


async def test_an_existing_conversation_without_messages_lists_empty(stack, issuer) -> None:
    tenant = str(uuid.uuid4())
    resolved = await stack.conversations.ResolveInboundContact(
        conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant, wa_id="16505550000",
                                                      message_at="2026-11-29T10:00:00Z"),
        metadata=auth(issuer.service_token(service="messaging")))
    page = await stack.stub.ListMessages(
        messaging_pb2.ListMessagesRequest(conversation_id=resolved.conversation.id),
        metadata=auth(issuer.user_token(user_id="agent", tenant_id=tenant)))
    assert list(page.items) == [] and page.next_cursor == ""
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # yet another tenant's user cannot tell it exists
        await stack.stub.ListMessages(
            messaging_pb2.ListMessagesRequest(conversation_id=resolved.conversation.id),
            metadata=auth(issuer.user_token(user_id="other", tenant_id=str(uuid.uuid4()))))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_paging_arguments_are_invalid(stack, issuer) -> None:
    user = auth(issuer.user_token(user_id="agent", tenant_id=str(uuid.uuid4())))
    for request, code in (
        (messaging_pb2.ListMessagesRequest(conversation_id=str(uuid.uuid4()), cursor="not-a-cursor"),
         "INVALID_CURSOR"),
        (messaging_pb2.ListMessagesRequest(conversation_id=str(uuid.uuid4()), limit=-1), "VALIDATION_FAILED"),
        (messaging_pb2.ListMessagesRequest(conversation_id=str(uuid.uuid4()), limit=101), "VALIDATION_FAILED"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stack.stub.ListMessages(request, metadata=user)
        assert (raised.value.code(), error_code(raised.value)) == (grpc.StatusCode.INVALID_ARGUMENT, code)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.ListMessages(messaging_pb2.ListMessagesRequest(conversation_id=str(uuid.uuid4())))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
