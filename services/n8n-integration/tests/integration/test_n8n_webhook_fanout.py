"""The fan-out of Eva's events: the public types and their data (the Socket.io view), the subscriptions that asked
for the type, the per-tenant seq, once per event even when Kafka delivers it again; and the service as main.py runs
it, consuming real Kafka topics and delivering to a real receiver."""

from __future__ import annotations

import json
import uuid

import pytest
from eva_events import conversation as conversation_events
from eva_events import messaging
from eva_events.client_views import client_view
from eva_events.envelope import make_event
from eva_events.topics import dlq
from eva_testing.kafka import create_topics, unique_topic

pytestmark = pytest.mark.integration


async def _envelopes(kit, app_db, tenant: str, subscription_id: str | None = None) -> list[dict]:
    rows = await kit.rows(app_db, tenant, "SELECT subscription_id, envelope FROM webhook_deliveries ORDER BY id")
    return [json.loads(row["envelope"]) for row in rows
            if subscription_id is None or str(row["subscription_id"]) == subscription_id]


async def test_each_subscription_gets_the_types_it_asked_for_with_the_socket_view(make_app, receiver, kit,
                                                                                  app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    messages = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/m"),
                                                      events=["message.received", "message.status"])
    everything = await app.webhooks.create_subscription(
        actor=kit.admin(tenant), url=receiver.url("/all"),
        events=["message.received", "message.status", "conversation.created", "conversation.updated",
                "conversation.assigned", "escalation.raised", "escalation.updated"])
    inbound = kit.message_received(tenant, "conv-1")
    status = kit.message_received(tenant, "conv-1", event_type=messaging.MESSAGE_STATUS_CHANGED, status="FAILED")
    echo = kit.message_received(tenant, "conv-1", event_type=messaging.MESSAGE_CREATED,
                                source=messaging.SOURCE_BUSINESS_APP)
    sent_by_eva = kit.message_received(tenant, "conv-1", event_type=messaging.MESSAGE_CREATED,
                                       source=messaging.SOURCE_EVA)
    assigned = kit.conversation_assigned(tenant, "conv-1", "agent-1")
    tag = make_event(conversation_events.TAG_CREATED, tenant_id=tenant,
                     data={"id": "t", "name": "VIP", "color": "#ff0000", "createdAt": "2026-12-07T00:00:00.000Z",
                           "updatedAt": "2026-12-07T00:00:00.000Z"})
    other_tenant = kit.message_received(kit.new_tenant(), "conv-9")
    queued = await app.fanout.apply([inbound, status, echo, sent_by_eva, assigned, tag, other_tenant])
    assert queued == 3 + 4  # /m: inbound, status, echo; /all: those and the assignment

    mine = await _envelopes(kit, app_db, tenant, messages.subscription.id)
    assert [(body["type"], body["id"]) for body in mine] == [
        ("message.received", inbound.id), ("message.status", status.id), ("message.received", echo.id)]
    everything_bodies = await _envelopes(kit, app_db, tenant, everything.subscription.id)
    assert [body["type"] for body in everything_bodies] == [
        "message.received", "message.status", "message.received", "conversation.assigned"]
    by_id = {body["id"]: body for body in everything_bodies}
    assert by_id[inbound.id]["data"] == client_view(inbound.type, inbound.data) == inbound.data
    assert by_id[status.id]["data"] == {"messageId": status.data["id"], "conversationId": "conv-1",
                                        "status": "FAILED"}
    assert by_id[echo.id]["data"]["source"] == "business_app" and by_id[echo.id]["data"]["direction"] == "outbound"
    assert by_id[assigned.id]["data"] == {"conversationId": "conv-1", "attendantId": "agent-1"}
    # one seq per event, the same for both subscriptions, increasing in the order of the fetch
    assert [body["seq"] for body in everything_bodies] == [1, 2, 3, 4]
    assert [body["seq"] for body in mine] == [1, 2, 3]
    assert all(body["tenantId"] == tenant and body["occurredAt"].endswith("Z") for body in everything_bodies)

    # the next fetch continues the tenant's sequence
    later = kit.message_received(tenant, "conv-2")
    await app.fanout.apply([later])
    assert (await _envelopes(kit, app_db, tenant, everything.subscription.id))[-1]["seq"] == 5


async def test_an_event_delivered_again_fans_out_once(make_app, receiver, kit, app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/once"),
                                           events=["message.received"])
    event = kit.message_received(tenant, "conv-1")
    assert await app.fanout.apply([event, event]) == 1  # a second copy in the same fetch
    assert await app.fanout.apply([event]) == 0  # a later redelivery
    bodies = await _envelopes(kit, app_db, tenant)
    assert len(bodies) == 1 and bodies[0]["seq"] == 1
    sequence = await kit.rows(app_db, tenant, "SELECT last_seq FROM webhook_sequences")
    assert sequence[0]["last_seq"] == 1  # the redelivery took no seq


async def test_every_public_event_is_logged_with_a_gapless_seq_and_paged_after_a_seq(make_app, kit, app_db) -> None:
    """The event log behind GET /n8n/events: every public event of a tenant, subscribed to or not, in the order of the
    fetch with the tenant's next seq (the webhooks' seq too); pages after a seq; another tenant's apart; rows past the
    retention go when the tenant's next events are written."""
    app = make_app()
    tenant, other = kit.new_tenant(), kit.new_tenant()
    first = [kit.message_received(tenant, "conv-1"), kit.conversation_assigned(tenant, "conv-1", "agent-1"),
             kit.message_received(other, "conv-9"), kit.message_received(tenant, "conv-2")]
    assert await app.fanout.apply(first) == 0  # nobody subscribed: logged all the same
    await app.fanout.apply([first[0]])  # a redelivery: logged once
    page = await app.n8n_api.events.page(tenant_id=tenant, after_seq=0, limit=100)
    assert [(item["seq"], item["id"], item["type"]) for item in page.items] == [
        (1, first[0].id, "message.received"), (2, first[1].id, "conversation.assigned"),
        (3, first[3].id, "message.received")]
    assert (page.next_after_seq, page.oldest_seq, page.newest_seq) == (3, 1, 3)
    assert page.items[0]["data"] == first[0].data and page.items[0]["tenantId"] == tenant
    later = await app.n8n_api.events.page(tenant_id=tenant, after_seq=1, limit=1)
    assert [item["seq"] for item in later.items] == [2] and later.next_after_seq == 2
    none = await app.n8n_api.events.page(tenant_id=tenant, after_seq=3, limit=100)
    assert none.items == [] and none.next_after_seq == 3
    theirs = await app.n8n_api.events.page(tenant_id=other, after_seq=0, limit=100)
    assert [(item["seq"], item["id"]) for item in theirs.items] == [(1, first[2].id)]

    # retention: the tenant's rows older than it go with its next write
    async with app_db.transaction():
        await app_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await app_db.execute("UPDATE integration_events SET created_at = now() - interval '8 days' "
                             "WHERE tenant_id = $1 AND seq < 3", tenant)
    await app.fanout.apply([kit.message_received(tenant, "conv-3")])
    kept = await app.n8n_api.events.page(tenant_id=tenant, after_seq=0, limit=100)
    assert [item["seq"] for item in kept.items] == [3, 4] and kept.oldest_seq == 3


async def test_the_service_consumes_kafka_and_delivers_once_per_event(make_app, receiver, kit, app_db, kafka,
                                                                      infra, eventually) -> None:
    topics = {name: unique_topic(name) for name in ("messaging", "conversation", "audit", "integration")}
    await create_topics(infra.kafka_bootstrap, *topics.values(), dlq(topics["messaging"]),
                        dlq(topics["conversation"]))
    app = make_app(messaging_events_topic=topics["messaging"], conversation_events_topic=topics["conversation"],
                   audit_events_topic=topics["audit"], integration_events_topic=topics["integration"],
                   consumer_group=f"n8n-test-{uuid.uuid4().hex[:8]}")
    await app.start(serve_http=False)
    try:
        tenant = kit.new_tenant()
        created = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/live"),
                                                         events=["message.received", "conversation.assigned"])
        message = kit.message_received(tenant, "conv-1", text="is breakfast included?")
        assigned = kit.conversation_assigned(tenant, "conv-1", "agent-2")
        # a later event on the same partition (same key): once it is delivered, the copy before it was consumed
        marker = kit.message_received(tenant, "conv-1", text="marker")
        for _ in range(2):  # Kafka delivers at least once: the same record again
            await kafka.produce(topics["messaging"], message.to_bytes(), key=b"conv-1")
        await kafka.produce(topics["messaging"], marker.to_bytes(), key=b"conv-1")
        await kafka.produce(topics["conversation"], assigned.to_bytes(), key=b"conv-1")

        async def all_received():
            ids = {request.headers["X-Eva-Event-Id"] for request in receiver.on("/live")}
            return ids >= {message.id, marker.id, assigned.id}

        await eventually(all_received, timeout=60)
        await eventually(lambda: _settled(kit, app_db, tenant, 3), timeout=30)
        ids = [request.headers["X-Eva-Event-Id"] for request in receiver.on("/live")]
        assert sorted(ids) == sorted([message.id, marker.id, assigned.id])  # the copy was not delivered again
        assert ids.index(message.id) < ids.index(marker.id)  # one conversation, in order
        body = next(request.json for request in receiver.on("/live") if request.json["id"] == message.id)
        assert body["data"]["content"] == {"text": {"body": "is breakfast included?"}}

        # the subscription's creation was audited through the outbox onto the audit topic
        records = await kafka.wait_for(topics["audit"], lambda records: any(
            json.loads(record.value)["data"]["action"] == "webhook.subscription_created" for record in records))
        entry = next(json.loads(r.value)["data"] for r in records
                     if json.loads(r.value)["data"]["action"] == "webhook.subscription_created")
        assert entry["targetId"] == created.subscription.id and created.secret not in json.dumps(entry)
    finally:
        await app.stop()


async def _settled(kit, app_db, tenant: str, count: int) -> bool:
    rows = await kit.rows(app_db, tenant, "SELECT state FROM webhook_deliveries")
    return len(rows) == count and all(row["state"] == "delivered" for row in rows)


async def test_the_fan_out_wakes_the_delivery_worker_instead_of_waiting_for_its_poll(make_app, receiver, kit, kafka,
                                                                                     infra, eventually) -> None:
    """Deliveries the process queues are attempted at once: with a poll of five minutes, an event consumed from
    Kafka still reaches the receiver within seconds (the poll is left for other replicas' deliveries and retries)."""
    topics = {name: unique_topic(name) for name in ("messaging", "conversation", "audit", "integration")}
    await create_topics(infra.kafka_bootstrap, *topics.values(), dlq(topics["messaging"]),
                        dlq(topics["conversation"]))
    app = make_app(messaging_events_topic=topics["messaging"], conversation_events_topic=topics["conversation"],
                   audit_events_topic=topics["audit"], integration_events_topic=topics["integration"],
                   consumer_group=f"n8n-test-{uuid.uuid4().hex[:8]}", webhook_poll_seconds=300)
    await app.start(serve_http=False)
    try:
        tenant = kit.new_tenant()
        await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/woken"),
                                               events=["message.received"])
        message = kit.message_received(tenant, "conv-1")
        await kafka.produce(topics["messaging"], message.to_bytes(), key=b"conv-1")

        async def received():
            return [request for request in receiver.on("/woken")
                    if request.headers["X-Eva-Event-Id"] == message.id]

        await eventually(received, timeout=20)
    finally:
        await app.stop()
