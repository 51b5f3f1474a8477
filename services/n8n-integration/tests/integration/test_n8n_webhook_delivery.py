"""The delivery worker against a real local HTTP receiver: signature checked from the receiver's side, retries with
the configured backoff, timeouts, order per conversation while an earlier delivery fails, dead-lettering after the
expiry, pausing after repeated failures (with its audit entry and tenant event in the outbox), redelivery of one and
of a time range."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from eva_common.errors import FailedPrecondition
from eva_events.audit import AUDIT_RECORDED
from eva_events.integration import WEBHOOK_SUBSCRIPTION_PAUSED
from n8n_service.delivery import sample_backlog
from n8n_service.signing import verify
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _deliveries(kit, app_db, tenant: str) -> list:
    return await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries ORDER BY id")


async def test_a_delivery_is_signed_pinned_and_carries_the_envelope(make_app, receiver, kit, app_db) -> None:
    # the host name resolves (injected resolver) to the receiver's loopback address: the request goes to the checked
    # address and still names the original host
    app = make_app(resolver=kit.fixed_resolver({"hooks.hotel.test": ["127.0.0.1"]}))
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(
        actor=kit.admin(tenant), url=receiver.url("/hook?token=abc", host="hooks.hotel.test"),
        events=["message.received"])
    event = kit.message_received(tenant, "conv-1", text="bonjour")
    delivered_before = _metric("eva_outbound_webhook_attempts_total", outcome="delivered")
    created_before = _metric("eva_outbound_webhook_deliveries_created_total", type="message.received")
    assert await app.fanout.apply([event]) == 1
    assert _metric("eva_outbound_webhook_deliveries_created_total", type="message.received") == created_before + 1

    async def received():
        return receiver.on("/hook")

    [request] = await kit.pump(app, received)
    headers = {key.lower(): value for key, value in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"hooks.hotel.test:{receiver.port}"
    assert headers["x-eva-event-id"] == event.id
    assert headers["x-eva-event-type"] == "message.received"
    assert verify(created.secret, request.body, headers["x-eva-signature"], now=int(time.time()))
    assert not verify("another-secret-entirely", request.body, headers["x-eva-signature"], now=int(time.time()))
    assert not verify(created.secret, request.body + b" ", headers["x-eva-signature"], now=int(time.time()))
    assert created.secret not in request.body.decode()
    body = request.json
    assert set(body) == {"id", "type", "tenantId", "occurredAt", "seq", "data"}
    assert body["id"] == event.id and body["type"] == "message.received" and body["tenantId"] == tenant
    assert body["data"]["content"] == {"text": {"body": "bonjour"}} and body["data"]["contact"]["name"] == "Guest"
    assert body["seq"] >= 1

    async def delivered():
        rows = await _deliveries(kit, app_db, tenant)
        return rows if rows[0]["state"] == "delivered" else None

    [row] = await kit.pump(app, delivered)
    assert row["attempts"] == 1 and row["last_status_code"] == 200 and row["last_latency_ms"] is not None
    assert _metric("eva_outbound_webhook_attempts_total", outcome="delivered") == delivered_before + 1
    assert json.loads(row["envelope"]) == body  # the exact body sent


async def test_failures_and_timeouts_are_retried_with_backoff_then_delivered(make_app, receiver, kit,
                                                                            app_db) -> None:
    app = make_app(webhook_retry_base_seconds=0.3, webhook_retry_max_seconds=0.6, webhook_timeout_seconds=0.4)
    assert app.delivery._retry.schedule(4) == [0.3, 0.6, 0.6, 0.6]
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/flaky"),
                                           events=["message.received"])
    receiver.script("/flaky", "fail", "timeout", "ok")
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def failed_once():
        rows = await _deliveries(kit, app_db, tenant)
        return rows[0] if rows[0]["attempts"] == 1 else None

    first = await kit.pump(app, failed_once)
    assert first["state"] == "pending" and first["last_status_code"] == 500 and first["last_error"] == "HTTP 500"
    wait = (first["next_attempt_at"] - first["updated_at"]).total_seconds()
    assert wait == pytest.approx(0.3, abs=0.01)  # base, no jitter

    async def failed_twice():
        rows = await _deliveries(kit, app_db, tenant)
        return rows[0] if rows[0]["attempts"] == 2 else None

    second = await kit.pump(app, failed_twice)
    assert second["last_error"] == "timeout after 0.4s" and second["last_status_code"] is None
    assert (second["next_attempt_at"] - second["updated_at"]).total_seconds() == pytest.approx(0.6, abs=0.01)

    async def delivered():
        rows = await _deliveries(kit, app_db, tenant)
        return rows[0] if rows[0]["state"] == "delivered" else None

    done = await kit.pump(app, delivered)
    assert done["attempts"] == 3 and done["last_error"] is None and done["delivered_at"] is not None
    attempts = receiver.on("/flaky")
    assert len(attempts) == 3
    assert attempts[1].at - attempts[0].at >= 0.3 - 0.02  # the waits were honoured
    assert attempts[2].at - attempts[1].at >= 0.6 - 0.02
    assert len({request.headers["X-Eva-Event-Id"] for request in attempts}) == 1


async def test_a_conversation_keeps_its_order_while_an_earlier_delivery_fails(make_app, receiver, kit,
                                                                             app_db) -> None:
    app = make_app(webhook_retry_base_seconds=0.1)
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/ordered"),
                                           events=["message.received", "conversation.assigned"])
    first, second = kit.message_received(tenant, "conv-A", text="1"), kit.message_received(tenant, "conv-A", text="2")
    third = kit.conversation_assigned(tenant, "conv-A", "agent-7")
    other = kit.message_received(tenant, "conv-B", text="elsewhere")
    receiver.script_event(first.id, "fail", "fail", "fail")
    assert await app.fanout.apply([first, second, third, other]) == 4

    async def all_delivered():
        rows = await _deliveries(kit, app_db, tenant)
        return rows if all(row["state"] == "delivered" for row in rows) else None

    await kit.pump(app, all_delivered)
    ids = [request.headers["X-Eva-Event-Id"] for request in receiver.on("/ordered")]
    conversation_a = [event_id for event_id in ids if event_id != other.id]
    # conv-A: only its head is ever attempted: `first` three times failing and once more, then each once, in order
    assert conversation_a == [first.id] * 4 + [second.id, third.id]
    # conv-B was not held behind conv-A's failing head
    assert ids.index(other.id) < ids.index(second.id)
    seqs = {json.loads(row["envelope"])["id"]: json.loads(row["envelope"])["seq"]
            for row in await _deliveries(kit, app_db, tenant)}
    assert seqs[first.id] < seqs[second.id] < seqs[third.id] < seqs[other.id]


async def test_a_delivery_past_its_expiry_is_dead_and_stops_blocking_its_conversation(make_app, receiver, kit,
                                                                                     app_db) -> None:
    app = make_app(webhook_retry_base_seconds=0.1, webhook_max_age_seconds=1.0)
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/down"),
                                           events=["message.received"])
    receiver.script("/down", *["fail"] * 1000)
    doomed = kit.message_received(tenant, "conv-1")
    await app.fanout.apply([doomed])

    async def dead():
        rows = await _deliveries(kit, app_db, tenant)
        return rows[0] if rows[0]["state"] == "dead" else None

    row = await kit.pump(app, dead)
    assert row["attempts"] >= 2 and row["last_error"] == "HTTP 500" and row["next_attempt_at"] is None
    assert row["updated_at"] >= row["expires_at"]  # the last attempt was at or after the expiry, not before
    assert row["expires_at"] - row["created_at"] == timedelta(seconds=1)
    attempts_when_dead = len(receiver.on("/down"))
    # a dead delivery is never attempted again, and the conversation's next event goes out
    receiver.steps["/down"] = []
    after = kit.message_received(tenant, "conv-1")
    await app.fanout.apply([after])

    async def next_delivered():
        rows = await _deliveries(kit, app_db, tenant)
        return rows if rows[1]["state"] == "delivered" else None

    rows = await kit.pump(app, next_delivered)
    assert rows[0]["state"] == "dead"
    assert [r.headers["X-Eva-Event-Id"] for r in receiver.on("/down")[attempts_when_dead:]] == [after.id]


async def test_a_subscription_that_keeps_failing_is_paused_and_its_admins_told(make_app, receiver, kit,
                                                                              app_db) -> None:
    app = make_app(webhook_pause_after_failures=3, webhook_pause_min_failing_seconds=0,
                   webhook_retry_base_seconds=0.05)
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/broken?k=v"),
                                                     events=["message.received"])
    subscription_id = created.subscription.id
    receiver.script("/broken", *["fail"] * 3)
    # two events of one conversation: attempts one at a time, so the pause comes exactly at the third failure
    await app.fanout.apply([kit.message_received(tenant, "conv-1"), kit.message_received(tenant, "conv-1")])

    async def paused():
        view = await app.webhooks.get_subscription(principal=kit.admin(tenant).principal,
                                                   subscription_id=subscription_id)
        return view if view.state == "paused" else None

    view = await kit.pump(app, paused)
    assert view.consecutive_failures == 3
    assert view.paused_reason is not None and "3 consecutive failed attempts" in view.paused_reason
    assert "HTTP 500" in view.paused_reason
    assert len(receiver.on("/broken")) == 3

    outbox = await kit.rows(app_db, tenant, "SELECT topic, payload FROM outbox ORDER BY id")
    events = [(row["topic"], json.loads(row["payload"])) for row in outbox]
    paused_events = [body for topic, body in events if body["type"] == WEBHOOK_SUBSCRIPTION_PAUSED]
    assert len(paused_events) == 1
    assert paused_events[0]["data"]["subscriptionId"] == subscription_id
    assert paused_events[0]["data"]["consecutiveFailures"] == 3
    assert paused_events[0]["data"]["url"] == receiver.url("/broken")  # the query (a token, maybe) left out
    assert [topic for topic, body in events if body["type"] == WEBHOOK_SUBSCRIPTION_PAUSED] == [
        app.settings.integration_events_topic]
    audits = [body["data"] for _, body in events if body["type"] == AUDIT_RECORDED]
    pause_audit = [entry for entry in audits if entry["action"] == "webhook.subscription_paused"]
    assert len(pause_audit) == 1 and pause_audit[0]["actorType"] == "service"
    assert pause_audit[0]["targetId"] == subscription_id
    assert created.secret not in json.dumps([body for _, body in events])

    # paused: no attempts, but new events still queue
    await app.fanout.apply([kit.message_received(tenant, "conv-3")])
    assert await app.delivery.run_once() == 0
    rows = await _deliveries(kit, app_db, tenant)
    assert [row["state"] for row in rows] == ["pending", "pending", "pending"]
    assert len(receiver.on("/broken")) == 3
    pending, paused_count = await sample_backlog(app.sessions)  # every tenant's, as the gauges show them
    assert pending >= 3 and paused_count >= 1
    assert _metric("eva_outbound_webhook_pending_deliveries") == pending
    assert _metric("eva_outbound_webhook_paused_subscriptions") == paused_count

    # resumed: failures cleared, the queue drains
    resumed = await app.webhooks.update_subscription(actor=kit.admin(tenant), subscription_id=subscription_id,
                                                     state="active")
    assert resumed.state == "active" and resumed.consecutive_failures == 0 and resumed.paused_reason is None

    async def drained():
        rows = await _deliveries(kit, app_db, tenant)
        return rows if all(row["state"] == "delivered" for row in rows) else None

    await kit.pump(app, drained)
    assert len(receiver.on("/broken")) == 6


async def test_redelivery_of_one_delivery_and_of_a_time_range(make_app, receiver, kit, app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    actor = kit.admin(tenant)
    created = await app.webhooks.create_subscription(actor=actor, url=receiver.url("/again"),
                                                     events=["message.received"])
    events = [kit.message_received(tenant, f"conv-{n}") for n in range(3)]
    for event in events:  # three fetches: three creation times
        await app.fanout.apply([event])

    async def all_delivered():
        rows = await _deliveries(kit, app_db, tenant)
        return rows if len(rows) == 3 and all(row["state"] == "delivered" for row in rows) else None

    rows = await kit.pump(app, all_delivered)
    assert len(receiver.on("/again")) == 3

    await app.webhooks.redeliver(actor=actor, delivery_id=str(rows[0]["id"]))
    with pytest.raises(FailedPrecondition) as refused:  # a pending delivery is not redelivered again
        await app.webhooks.redeliver(actor=actor, delivery_id=str(rows[0]["id"]))
    assert refused.value.code == "WEBHOOK_DELIVERY_PENDING"
    again = await app.webhooks.get_delivery(principal=actor.principal, delivery_id=str(rows[0]["id"]))
    assert again.state == "pending" and again.attempts == 1  # attempts kept
    assert again.expires_at > rows[0]["expires_at"]  # a fresh expiry

    async def redelivered_one():
        return len(receiver.on("/again")) == 4 and (await _deliveries(kit, app_db, tenant))[0]["attempts"] == 2

    await kit.pump(app, redelivered_one)
    assert receiver.on("/again")[3].headers["X-Eva-Event-Id"] == events[0].id

    # a range: the 2nd and 3rd by creation time, not the 1st
    start = rows[1]["created_at"]
    end = rows[2]["created_at"] + timedelta(microseconds=1)
    count = await app.webhooks.redeliver_range(actor=actor, subscription_id=created.subscription.id,
                                               since=start, until=end)
    assert count == 2

    async def redelivered_range():
        return len(receiver.on("/again")) == 6

    await kit.pump(app, redelivered_range)
    assert sorted(r.headers["X-Eva-Event-Id"] for r in receiver.on("/again")[4:]) == sorted(
        [events[1].id, events[2].id])
    final = await _deliveries(kit, app_db, tenant)
    assert [row["attempts"] for row in final] == [2, 2, 2]
    page = await app.webhooks.list_deliveries(principal=actor.principal, subscription_id=created.subscription.id,
                                              state="delivered", since=datetime.now(UTC) - timedelta(hours=1), limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None
    rest = await app.webhooks.list_deliveries(principal=actor.principal, limit=2, cursor=page.next_cursor,
                                              subscription_id=created.subscription.id)
    assert len(rest.items) == 1 and rest.next_cursor is None
    assert {item.id for item in page.items + rest.items} == {str(row["id"]) for row in final}
