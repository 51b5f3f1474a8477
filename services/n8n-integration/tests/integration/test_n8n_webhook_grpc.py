"""WebhookService over a real grpc.aio server (the one main.py builds, on port 0) against the test profile's
PostgreSQL: the caller's token verified by the shared interceptor (revocations in the real Redis), who is refused,
tenant isolation, the secret shown once, partial updates by field presence, the delivery log's filters and pages,
redelivery of one and of a range, and the stable error codes in the `eva-error-code` trailer."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from eva.n8n.v1 import webhooks_pb2, webhooks_pb2_grpc
from eva_common.auth import RedisRevocations
from eva_common.errors import ERROR_CODE_METADATA_KEY
from eva_common.redis import create_redis
from eva_common.timefmt import rfc3339
from eva_testing.tokens import TestTokenIssuer
from n8n_service.main import N8nApp

pytestmark = pytest.mark.integration

MESSAGE_RECEIVED = "message.received"


@dataclass
class Api:
    app: N8nApp
    stub: webhooks_pb2_grpc.WebhookServiceStub
    issuer: TestTokenIssuer
    revocations: RedisRevocations

    def admin(self, tenant: str, *, role: str = "admin", user_id: str | None = None,
              ip: str | None = None) -> tuple[tuple[str, str], ...]:
        token = self.issuer.user_token(user_id=user_id or f"user-{uuid.uuid4().hex[:8]}", tenant_id=tenant,
                                       role=role)
        return (("authorization", f"Bearer {token}"),) + ((("x-client-ip", ip),) if ip else ())


@pytest_asyncio.fixture(scope="module")
async def api(database, infra, kit) -> AsyncIterator[Api]:
    """The service as main.py builds it, with a test token issuer's verifier (and the real Redis revocations); only
    its gRPC server is started (the tests drive the fan-out and the delivery worker themselves)."""
    issuer = TestTokenIssuer()
    redis = create_redis(infra.redis_url)
    revocations = RedisRevocations(redis)
    app = N8nApp(kit.settings_for(database, infra, grpc_port=0), verifier=issuer.verifier(revocations))
    assert app.grpc_server is not None
    await app.grpc_server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    try:
        yield Api(app=app, stub=webhooks_pb2_grpc.WebhookServiceStub(channel), issuer=issuer,
                  revocations=revocations)
    finally:
        await channel.close()
        await app.stop()
        await redis.aclose()


async def failure(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str | None]:
    """The status and Eva error code of a call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        code = dict(error.trailing_metadata() or ()).get(ERROR_CODE_METADATA_KEY)
        return error.code(), code if isinstance(code, str) else None
    raise AssertionError("the call succeeded")


def create_request(url: str, *events: str, secret: str | None = None) -> webhooks_pb2.CreateSubscriptionRequest:
    request = webhooks_pb2.CreateSubscriptionRequest(url=url, events=list(events or (MESSAGE_RECEIVED,)))
    if secret is not None:
        request.secret = secret
    return request


async def test_an_admin_creates_a_subscription_and_sees_its_secret_only_once(api, receiver, kit, app_db) -> None:
    tenant = kit.new_tenant()
    admin = api.admin(tenant, user_id="admin-1", ip="203.0.113.9")
    created = await api.stub.CreateSubscription(
        create_request(receiver.url("/hook?token=abc"), MESSAGE_RECEIVED, "escalation.raised"), metadata=admin)
    subscription = created.subscription
    assert created.secret.startswith("whsec_") and len(created.secret) > 40
    assert (subscription.tenant_id, subscription.url, list(subscription.events), subscription.state) == (
        tenant, receiver.url("/hook?token=abc"), [MESSAGE_RECEIVED, "escalation.raised"], "active")
    assert subscription.created_by == "admin-1" and subscription.paused_reason == ""
    assert subscription.created_at.endswith("Z") and subscription.created_at == subscription.updated_at

    given = await api.stub.CreateSubscription(
        create_request(receiver.url("/given"), secret="a-secret-of-my-own-choosing"), metadata=admin)
    assert given.secret == "a-secret-of-my-own-choosing"

    listed = await api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=admin)
    fetched = await api.stub.GetSubscription(webhooks_pb2.GetSubscriptionRequest(subscription_id=subscription.id),
                                             metadata=admin)
    assert [item.id for item in listed.items] == [subscription.id, given.subscription.id]
    assert fetched == subscription
    for answer in (listed, fetched):  # the secret never comes back, in any field
        wire = answer.SerializeToString()
        assert created.secret.encode() not in wire and b"a-secret-of-my-own-choosing" not in wire

    # the audit entry carries the caller's address from the metadata, the URL without its query, never the secret
    outbox = [row["body"] for row in await kit.rows(app_db, tenant,
                                                   "SELECT convert_from(payload, 'UTF8') AS body FROM outbox")]
    audit = [json.loads(body)["data"] for body in outbox if "webhook.subscription_created" in body]
    assert len(audit) == 2
    assert audit[0]["ip"] == "203.0.113.9" and audit[0]["actorId"] == "admin-1"
    assert "token=abc" not in json.dumps(audit) and created.secret not in "".join(outbox)


async def test_only_a_tenants_admins_may_call_with_a_valid_token(api, receiver, kit) -> None:
    tenant = kit.new_tenant()
    url = receiver.url("/x")
    attendant = api.admin(tenant, role="attendant")
    key = (("authorization", "Bearer " + api.issuer.api_key_token(key_id="k1", tenant_id=tenant,
                                                                   scopes=["conversations:write"])),)
    service = (("authorization", "Bearer " + api.issuer.service_token(service="messaging")),)
    forged = (("authorization", "Bearer " + TestTokenIssuer().user_token(user_id="u", tenant_id=tenant)),)
    assert await failure(api.stub.CreateSubscription(create_request(url), metadata=attendant)) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    assert await failure(api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(), metadata=attendant)) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    assert await failure(api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=key)) == (
        grpc.StatusCode.PERMISSION_DENIED, "API_KEY_NOT_ALLOWED")
    assert await failure(api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=service)) == (
        grpc.StatusCode.PERMISSION_DENIED, "USER_ONLY")
    assert (await failure(api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest())))[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    assert (await failure(api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=forged)))[0] \
        == grpc.StatusCode.UNAUTHENTICATED

    # a super admin is an admin; a revoked user's token is refused (the revocation times in Redis)
    superuser = api.admin(tenant, role="super_admin")
    assert len((await api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=superuser)).items) \
        == 0
    user_id = f"revoked-{uuid.uuid4().hex[:8]}"
    before = api.admin(tenant, user_id=user_id)
    assert (await api.stub.CreateSubscription(create_request(url), metadata=before)).subscription.id
    await api.revocations.revoke(user_id)
    assert await failure(api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=before)) == (
        grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_another_tenants_ids_are_not_found_and_left_alone(api, receiver, kit) -> None:
    tenant, other = kit.new_tenant(), kit.new_tenant()
    owner, stranger = api.admin(tenant), api.admin(other)
    created = await api.stub.CreateSubscription(create_request(receiver.url("/mine")), metadata=owner)
    sid = created.subscription.id
    assert await api.app.fanout.apply([kit.message_received(tenant, "conversation-1")]) == 1
    deliveries = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(), metadata=owner)
    delivery_id = deliveries.items[0].id

    not_found = (grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND")
    assert await failure(api.stub.GetSubscription(webhooks_pb2.GetSubscriptionRequest(subscription_id=sid),
                                                  metadata=stranger)) == not_found
    update = webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, state="paused")
    assert await failure(api.stub.UpdateSubscription(update, metadata=stranger)) == not_found
    assert await failure(api.stub.DeleteSubscription(webhooks_pb2.DeleteSubscriptionRequest(subscription_id=sid),
                                                     metadata=stranger)) == not_found
    now = datetime.now(UTC)
    redeliver_range = webhooks_pb2.RedeliverRangeRequest(subscription_id=sid, from_time=rfc3339(now - timedelta(1)),
                                                         to_time=rfc3339(now + timedelta(1)))
    assert await failure(api.stub.RedeliverRange(redeliver_range, metadata=stranger)) == not_found
    delivery_not_found = (grpc.StatusCode.NOT_FOUND, "WEBHOOK_DELIVERY_NOT_FOUND")
    assert await failure(api.stub.GetDelivery(webhooks_pb2.GetDeliveryRequest(delivery_id=delivery_id),
                                              metadata=stranger)) == delivery_not_found
    assert await failure(api.stub.Redeliver(webhooks_pb2.RedeliverRequest(delivery_id=delivery_id),
                                            metadata=stranger)) == delivery_not_found
    assert list((await api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=stranger)).items) \
        == []
    foreign_filter = webhooks_pb2.ListDeliveriesRequest(subscription_id=sid)
    assert list((await api.stub.ListDeliveries(foreign_filter, metadata=stranger)).items) == []
    assert list((await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(), metadata=stranger)).items) == []

    # the owner's subscription and delivery are untouched
    mine = await api.stub.GetSubscription(webhooks_pb2.GetSubscriptionRequest(subscription_id=sid), metadata=owner)
    assert mine.state == "active" and mine.updated_at == created.subscription.updated_at
    assert (await api.stub.GetDelivery(webhooks_pb2.GetDeliveryRequest(delivery_id=delivery_id),
                                       metadata=owner)).state == "pending"


async def test_updates_change_only_the_fields_present(api, receiver, kit) -> None:
    admin = api.admin(kit.new_tenant())
    created = await api.stub.CreateSubscription(create_request(receiver.url("/a"), MESSAGE_RECEIVED), metadata=admin)
    sid = created.subscription.id

    paused = await api.stub.UpdateSubscription(
        webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, state="paused"), metadata=admin)
    assert (paused.state, paused.url, list(paused.events)) == ("paused", receiver.url("/a"), [MESSAGE_RECEIVED])
    assert paused.paused_reason

    events = webhooks_pb2.UpdateSubscriptionRequest(
        subscription_id=sid, events=webhooks_pb2.EventTypes(items=["conversation.assigned", "message.status"]))
    changed = await api.stub.UpdateSubscription(events, metadata=admin)
    assert (changed.state, changed.url, list(changed.events)) == (
        "paused", receiver.url("/a"), ["conversation.assigned", "message.status"])

    moved = await api.stub.UpdateSubscription(
        webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, url=receiver.url("/b"), state="active"),
        metadata=admin)
    assert (moved.state, moved.url, list(moved.events), moved.paused_reason) == (
        "active", receiver.url("/b"), ["conversation.assigned", "message.status"], "")

    # an empty list that is present is a change (refused), unlike an absent one
    empty = webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, events=webhooks_pb2.EventTypes(items=[]))
    assert await failure(api.stub.UpdateSubscription(empty, metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_EVENTS_INVALID")
    private = webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, url="http://10.0.0.1/hook")
    assert await failure(api.stub.UpdateSubscription(private, metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_NOT_ALLOWED")
    assert await failure(api.stub.UpdateSubscription(
        webhooks_pb2.UpdateSubscriptionRequest(subscription_id=sid, state="stopped"), metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_STATE_INVALID")
    unchanged = await api.stub.GetSubscription(webhooks_pb2.GetSubscriptionRequest(subscription_id=sid),
                                               metadata=admin)
    assert unchanged == moved

    await api.stub.DeleteSubscription(webhooks_pb2.DeleteSubscriptionRequest(subscription_id=sid), metadata=admin)
    assert await failure(api.stub.GetSubscription(webhooks_pb2.GetSubscriptionRequest(subscription_id=sid),
                                                  metadata=admin)) == (grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND")


async def test_creation_refusals_keep_their_codes(api, receiver, kit) -> None:
    admin = api.admin(kit.new_tenant())
    cases = [
        (create_request(receiver.url("/x"), "message.sent"), grpc.StatusCode.INVALID_ARGUMENT,
         "WEBHOOK_EVENTS_INVALID"),
        (create_request(receiver.url("/x"), secret="short"), grpc.StatusCode.INVALID_ARGUMENT,
         "WEBHOOK_SECRET_INVALID"),
        (create_request("ftp://example.com/x"), grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_INVALID"),
        (create_request("http://169.254.169.254/latest/meta-data"), grpc.StatusCode.INVALID_ARGUMENT,
         "WEBHOOK_URL_NOT_ALLOWED"),
    ]
    for request, status, code in cases:
        assert await failure(api.stub.CreateSubscription(request, metadata=admin)) == (status, code)
    assert list((await api.stub.ListSubscriptions(webhooks_pb2.ListSubscriptionsRequest(), metadata=admin)).items) \
        == []


async def test_the_delivery_log_filters_pages_and_redelivers(api, receiver, kit) -> None:
    tenant = kit.new_tenant()
    admin = api.admin(tenant)
    good = (await api.stub.CreateSubscription(create_request(receiver.url("/good")), metadata=admin)).subscription
    bad = (await api.stub.CreateSubscription(create_request(receiver.url("/bad")), metadata=admin)).subscription
    receiver.script("/bad", *["fail"] * 200)  # failing throughout the test
    before = datetime.now(UTC) - timedelta(seconds=1)
    events = [kit.message_received(tenant, f"conversation-{n}", text=f"hello {n}") for n in range(3)]
    assert await api.app.fanout.apply(events) == 6  # three events to two subscriptions

    async def settled() -> bool:
        page = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(subscription_id=good.id),
                                             metadata=admin)
        failed = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(subscription_id=bad.id),
                                               metadata=admin)
        return all(item.state == "delivered" for item in page.items) and any(
            item.attempts >= 1 for item in failed.items)

    await kit.pump(api.app, settled)

    # pages of two, newest first, then the last page's empty cursor
    first = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(limit=4), metadata=admin)
    second = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(limit=4, cursor=first.next_cursor),
                                           metadata=admin)
    ids = [int(item.id) for item in [*first.items, *second.items]]
    assert len(first.items) == 4 and first.next_cursor and len(second.items) == 2 and second.next_cursor == ""
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6

    delivered = await api.stub.ListDeliveries(
        webhooks_pb2.ListDeliveriesRequest(state="delivered", from_time=rfc3339(before)), metadata=admin)
    assert len(delivered.items) == 3 and {item.subscription_id for item in delivered.items} == {good.id}
    one = delivered.items[0]
    assert (one.attempts, one.last_status_code, one.last_error, one.next_attempt_at) == (1, 200, "", "")
    assert one.HasField("last_latency_ms") and one.last_latency_ms >= 0 and one.delivered_at.endswith("Z")
    envelope = json.loads(one.envelope_json)
    assert envelope["id"] == one.event_id and envelope["type"] == one.event_type == MESSAGE_RECEIVED
    assert envelope["tenantId"] == tenant and envelope["data"]["content"]["text"]["body"].startswith("hello")
    assert await api.stub.GetDelivery(webhooks_pb2.GetDeliveryRequest(delivery_id=one.id), metadata=admin) == one

    failing = (await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(subscription_id=bad.id,
                                                                                state="pending"),
                                             metadata=admin)).items
    attempted = [item for item in failing if item.attempts >= 1]
    assert attempted and attempted[0].last_status_code == 500 and attempted[0].last_error
    assert attempted[0].next_attempt_at and attempted[0].delivered_at == ""
    later = webhooks_pb2.ListDeliveriesRequest(from_time=rfc3339(datetime.now(UTC) + timedelta(minutes=1)))
    assert list((await api.stub.ListDeliveries(later, metadata=admin)).items) == []
    window = webhooks_pb2.ListDeliveriesRequest(from_time=rfc3339(before),
                                                to_time=rfc3339(datetime.now(UTC) + timedelta(minutes=1)))
    assert len((await api.stub.ListDeliveries(window, metadata=admin)).items) == 6

    # redeliver one: pending again, attempts kept; a pending one is refused
    again = await api.stub.Redeliver(webhooks_pb2.RedeliverRequest(delivery_id=one.id), metadata=admin)
    assert (again.id, again.state, again.attempts, again.delivered_at) == (one.id, "pending", 1, "")
    assert await failure(api.stub.Redeliver(webhooks_pb2.RedeliverRequest(delivery_id=one.id), metadata=admin)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "WEBHOOK_DELIVERY_PENDING")
    await kit.pump(api.app, lambda: _state_of(api, admin, one.id, "delivered"))

    # redeliver a range: the subscription's delivered ones created in [from, to)
    now = datetime.now(UTC)
    count = await api.stub.RedeliverRange(webhooks_pb2.RedeliverRangeRequest(
        subscription_id=good.id, from_time=rfc3339(before), to_time=rfc3339(now + timedelta(minutes=1))),
        metadata=admin)
    assert count.count == 3
    pending = await api.stub.ListDeliveries(webhooks_pb2.ListDeliveriesRequest(subscription_id=good.id,
                                                                               state="pending"), metadata=admin)
    assert len(pending.items) == 3
    empty_range = webhooks_pb2.RedeliverRangeRequest(subscription_id=good.id, from_time=rfc3339(now - timedelta(1)),
                                                     to_time=rfc3339(before - timedelta(days=1)))
    assert await failure(api.stub.RedeliverRange(empty_range, metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_TIME_RANGE_INVALID")
    open_ended = webhooks_pb2.RedeliverRangeRequest(subscription_id=good.id, from_time=rfc3339(before))
    assert await failure(api.stub.RedeliverRange(open_ended, metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_TIME_RANGE_INVALID")


async def test_listing_refuses_bad_filters_with_stable_codes(api, kit) -> None:
    admin = api.admin(kit.new_tenant())
    cases = [
        (webhooks_pb2.ListDeliveriesRequest(cursor="junk"), "INVALID_CURSOR"),
        (webhooks_pb2.ListDeliveriesRequest(limit=101), "VALIDATION_FAILED"),
        (webhooks_pb2.ListDeliveriesRequest(state="lost"), "VALIDATION_FAILED"),
        (webhooks_pb2.ListDeliveriesRequest(from_time="yesterday"), "WEBHOOK_TIME_RANGE_INVALID"),
        (webhooks_pb2.ListDeliveriesRequest(from_time="2026-12-01T10:00:00"), "WEBHOOK_TIME_RANGE_INVALID"),
        (webhooks_pb2.ListDeliveriesRequest(from_time="2026-12-02T00:00:00Z", to_time="2026-12-01T00:00:00Z"),
         "WEBHOOK_TIME_RANGE_INVALID"),
    ]
    for request, code in cases:
        assert await failure(api.stub.ListDeliveries(request, metadata=admin)) == (
            grpc.StatusCode.INVALID_ARGUMENT, code), request
    assert await failure(api.stub.GetDelivery(webhooks_pb2.GetDeliveryRequest(delivery_id="not-a-number"),
                                              metadata=admin)) == (grpc.StatusCode.NOT_FOUND,
                                                                   "WEBHOOK_DELIVERY_NOT_FOUND")


async def _state_of(api: Api, metadata: Any, delivery_id: str, state: str) -> bool:
    delivery = await api.stub.GetDelivery(webhooks_pb2.GetDeliveryRequest(delivery_id=delivery_id),
                                          metadata=metadata)
    return bool(delivery.state == state)
