"""GetConversation and GetContact never cross tenants: another tenant's id is simply not found."""

from __future__ import annotations

import secrets
import uuid

import grpc
import pytest
from eva.conversation.v1 import conversation_pb2

pytestmark = pytest.mark.integration


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_a_user_of_another_tenant_cannot_read_a_conversation_or_contact(harness, issuer) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    wa_id = "1650555" + str(secrets.randbelow(10**6)).zfill(6)
    resolved = await harness.stub.ResolveInboundContact(
        conversation_pb2.ResolveInboundContactRequest(tenant_id=tenant_a, wa_id=wa_id, profile_name="Guest A",
                                                      message_at="2026-11-29T10:00:00Z"),
        metadata=auth(issuer.service_token(service="messaging")))
    conversation_id, contact_id = resolved.conversation.id, resolved.contact.id

    user_a = auth(issuer.user_token(user_id="agent-a", tenant_id=tenant_a, role="attendant"))
    conversation = await harness.stub.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id), metadata=user_a)
    assert conversation.id == conversation_id and conversation.contact.wa_id == wa_id
    contact = await harness.stub.GetContact(conversation_pb2.GetContactRequest(contact_id=contact_id),
                                            metadata=user_a)
    assert contact.name == "Guest A"

    user_b = auth(issuer.user_token(user_id="agent-b", tenant_id=tenant_b))
    forbidden = [
        (harness.stub.GetConversation, conversation_pb2.GetConversationRequest(conversation_id=conversation_id),
         user_b),
        # a user cannot name another tenant: the request's tenant_id is only honoured for services
        (harness.stub.GetConversation,
         conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_a), user_b),
        (harness.stub.GetContact, conversation_pb2.GetContactRequest(contact_id=contact_id, tenant_id=tenant_a),
         user_b),
        (harness.stub.GetConversation,
         conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_b),
         auth(issuer.service_token())),
        (harness.stub.GetConversation, conversation_pb2.GetConversationRequest(conversation_id="not-a-uuid"),
         user_a),
        (harness.stub.GetContact, conversation_pb2.GetContactRequest(contact_id=str(uuid.uuid4())), user_a),
    ]
    for method, req, metadata in forbidden:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await method(req, metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    as_service = await harness.stub.GetConversation(
        conversation_pb2.GetConversationRequest(conversation_id=conversation_id, tenant_id=tenant_a),
        metadata=auth(issuer.service_token(service="gateway")))
    assert as_service.id == conversation_id and as_service.tenant_id == tenant_a
