"""The producer's side of the conversation.events.v1 contract (eva_events.conversation): driving every change the
service announces, each event it writes (through the outbox, read back from Kafka) is a contract type whose data is
exactly that type's view."""

from __future__ import annotations

import pytest
from eva.conversation.v1 import conversation_pb2
from eva_events.conversation import EVENT_DATA, EVENT_TYPES
from eva_events.envelope import EventEnvelope

pytestmark = pytest.mark.integration

AT = "2026-11-29T09:00:00Z"


async def test_every_event_the_service_produces_is_a_contract_type_carrying_its_view(inbox, harness, kafka) -> None:
    tenant = inbox.new_tenant()
    admin, agent, stub = inbox.user(tenant, role="admin"), inbox.user(tenant), inbox.stub
    conversation_id = (await inbox.guest(tenant, at=AT)).conversation.id
    await stub.AssignConversation(conversation_pb2.AssignConversationRequest(
        conversation_id=conversation_id, attendant_id=harness.auth.add_user(tenant_id=tenant)), metadata=admin)
    tag = await stub.CreateTag(conversation_pb2.CreateTagRequest(name="VIP", color="#ff0000"), metadata=admin)
    await stub.UpdateTag(conversation_pb2.UpdateTagRequest(tag_id=tag.id, name="VIP guest"), metadata=admin)
    await stub.AttachTag(conversation_pb2.AttachTagRequest(conversation_id=conversation_id, tag_id=tag.id),
                         metadata=agent)
    escalation = await stub.RaiseEscalation(conversation_pb2.RaiseEscalationRequest(
        conversation_id=conversation_id, reason="VIP guest", priority="high"), metadata=agent)
    await stub.AcknowledgeEscalation(conversation_pb2.AcknowledgeEscalationRequest(escalation_id=escalation.id),
                                     metadata=agent)
    contact = await stub.CreateContact(conversation_pb2.CreateContactRequest(name="Bert", phone="4915100000042"),
                                       metadata=agent)
    await stub.UpdateContact(conversation_pb2.UpdateContactRequest(contact_id=contact.id, name="Bert L."),
                             metadata=agent)
    await stub.DeleteTag(conversation_pb2.DeleteTagRequest(tag_id=tag.id), metadata=admin)

    def tenants_events(records: list) -> list[EventEnvelope]:
        envelopes = [EventEnvelope.from_bytes(record.value) for record in records]
        return [envelope for envelope in envelopes if envelope.tenant_id == tenant]

    records = await kafka.wait_for(harness.events_topic,
                                   lambda rs: {e.type for e in tenants_events(rs)} >= EVENT_TYPES)
    produced = tenants_events(records)
    assert {envelope.type for envelope in produced} == EVENT_TYPES  # every contract type, and nothing else
    for envelope in produced:
        view = EVENT_DATA[envelope.type].model_validate(envelope.data)
        assert view.to_json_dict() == envelope.data, envelope.type  # the view's fields, no more, no fewer
