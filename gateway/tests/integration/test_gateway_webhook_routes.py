"""/api/webhooks through the real gateway (uvicorn) to a real gRPC server running a fake n8n-integration
WebhookService (conftest.FakeWebhooks, which answers with the service's rules and codes): the route mapping — bodies
and answers in camelCase, the secret once, partial updates by field presence, the delivery log's filters and pages,
redelivery — who is refused at the edge, the caller's token forwarded, and another tenant's ids answered 404. The
service's own rules run against PostgreSQL in services/n8n-integration/tests/integration/test_n8n_webhook_grpc.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva.n8n.v1 import webhooks_pb2

pytestmark = pytest.mark.integration

SUBSCRIPTION_KEYS = {"id", "url", "events", "state", "pausedReason", "consecutiveFailures", "createdAt", "updatedAt",
                     "createdBy"}
DELIVERY_KEYS = {"id", "subscriptionId", "eventId", "eventType", "state", "attempts", "lastError", "lastStatusCode",
                 "latencyMs", "nextAttemptAt", "expiresAt", "createdAt", "deliveredAt", "envelope"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
HOOK = "https://n8n.hotel.example/webhook/eva"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert PROBLEM_KEYS <= set(response.json())
    return response.status_code, response.json()["code"]


def requests_of(upstreams: Any, method: str) -> list[Any]:
    return upstreams.directory.requests_of(method)


def seed_delivery(upstreams: Any, tenant_id: str, subscription_id: str, number: int, *, state: str = "delivered",
                  created_at: str = "2026-11-29T10:00:00.000Z", **fields: Any) -> webhooks_pb2.Delivery:
    envelope = {"id": f"evt-{number}", "type": "message.received", "tenantId": tenant_id,
                "occurredAt": created_at, "seq": number, "data": {"id": f"m-{number}"}}
    delivery = webhooks_pb2.Delivery(
        id=str(number), tenant_id=tenant_id, subscription_id=subscription_id, event_id=f"evt-{number}",
        event_type="message.received", state=state, expires_at="2026-11-30T10:00:00.000Z", created_at=created_at,
        envelope_json=json.dumps(envelope), **{"attempts": 1, **fields})
    upstreams.directory.webhook_deliveries[delivery.id] = delivery
    return delivery


async def test_an_admin_creates_a_webhook_and_sees_its_secret_only_once(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    created = await http.post("/api/webhooks", headers=bearer(admin.token),
                              json={"url": HOOK, "events": ["message.received", "conversation.assigned"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == SUBSCRIPTION_KEYS | {"secret"}
    assert body["secret"].startswith("whsec_")
    assert (body["url"], body["events"], body["state"], body["pausedReason"], body["createdBy"]) == (
        HOOK, ["message.received", "conversation.assigned"], "active", None, admin.user_id)
    request = requests_of(upstreams, "CreateSubscription")[-1]
    assert not request.HasField("secret")  # generated upstream
    assert ("CreateSubscription", f"Bearer {admin.token}") in upstreams.directory.forwarded_tokens

    chosen = await http.post("/api/webhooks", headers=bearer(admin.token),
                             json={"url": HOOK + "/2", "events": ["message.status"],
                                   "secret": "my-own-secret-of-24-chars"})
    assert chosen.status_code == 201 and chosen.json()["secret"] == "my-own-secret-of-24-chars"
    assert requests_of(upstreams, "CreateSubscription")[-1].secret == "my-own-secret-of-24-chars"

    listing = await http.get("/api/webhooks", headers=bearer(admin.token))
    assert listing.status_code == 200 and set(listing.json()) == {"items", "nextCursor"}
    assert listing.json()["nextCursor"] is None
    assert [item["id"] for item in listing.json()["items"]] == [body["id"], chosen.json()["id"]]
    assert all(set(item) == SUBSCRIPTION_KEYS for item in listing.json()["items"])
    fetched = await http.get(f"/api/webhooks/{body['id']}", headers=bearer(admin.token))
    assert fetched.status_code == 200 and fetched.json() == {k: v for k, v in body.items() if k != "secret"}
    for answer in (listing, fetched):
        assert body["secret"] not in answer.text and "my-own-secret-of-24-chars" not in answer.text


async def test_creation_refusals_keep_the_services_codes(
    http: httpx.AsyncClient, make_account: Callable[..., Any]
) -> None:
    admin = make_account(role="admin")
    cases = [
        ({"url": "https://10.0.0.1/hook", "events": ["message.received"]}, (400, "WEBHOOK_URL_NOT_ALLOWED")),
        ({"url": HOOK, "events": ["message.sent"]}, (400, "WEBHOOK_EVENTS_INVALID")),
        ({"url": HOOK, "events": []}, (400, "WEBHOOK_EVENTS_INVALID")),
        ({"url": HOOK, "events": ["message.received"], "secret": "short"}, (400, "WEBHOOK_SECRET_INVALID")),
        ({"events": ["message.received"]}, (400, "VALIDATION_FAILED")),  # no URL: the edge's own check
        ({"url": HOOK, "events": "message.received"}, (400, "VALIDATION_FAILED")),
    ]
    for body, expected in cases:
        assert problem(await http.post("/api/webhooks", headers=bearer(admin.token), json=body)) == expected, body
    assert (await http.get("/api/webhooks", headers=bearer(admin.token))).json()["items"] == []


async def test_attendants_api_keys_and_anonymous_callers_are_refused_before_any_call(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    subscription = upstreams.webhooks.add_subscription(admin.tenant_id)
    attendant = make_account(role="attendant", tenant_id=admin.tenant_id)
    _, key = upstreams.directory.add_api_key(tenant_id=admin.tenant_id,
                                             scopes=["conversations:write", "messages:read"])
    routes = [
        ("POST", "/api/webhooks", {"url": HOOK, "events": ["message.received"]}),
        ("GET", "/api/webhooks", None),
        ("GET", f"/api/webhooks/{subscription.id}", None),
        ("PATCH", f"/api/webhooks/{subscription.id}", {"state": "paused"}),
        ("DELETE", f"/api/webhooks/{subscription.id}", None),
        ("POST", f"/api/webhooks/{subscription.id}/redeliver",
         {"from": "2026-11-29T00:00:00Z", "to": "2026-11-30T00:00:00Z"}),
        ("GET", "/api/webhooks/deliveries", None),
        ("GET", "/api/webhooks/deliveries/1", None),
        ("POST", "/api/webhooks/deliveries/1/redeliver", None),
    ]
    before = len(upstreams.directory.upstream_requests)
    for method, path, body in routes:
        refused = await http.request(method, path, headers=bearer(attendant.token), json=body)
        assert problem(refused) == (403, "FORBIDDEN_ROLE"), (method, path)
        with_key = await http.request(method, path, headers={"X-Api-Key": key}, json=body)
        assert problem(with_key) == (403, "API_KEY_NOT_ALLOWED"), (method, path)
        assert problem(await http.request(method, path, json=body)) == (401, "UNAUTHENTICATED"), (method, path)
    assert len(upstreams.directory.upstream_requests) == before  # nothing reached the service
    assert upstreams.directory.webhooks[subscription.id].state == "active"

    superuser = make_account(role="super_admin", tenant_id=admin.tenant_id)  # an admin of its tenant too
    assert (await http.get(f"/api/webhooks/{subscription.id}", headers=bearer(superuser.token))).status_code == 200


async def test_another_tenants_subscriptions_and_deliveries_are_not_found(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    owner, stranger = make_account(role="admin"), make_account(role="admin")
    subscription = upstreams.webhooks.add_subscription(owner.tenant_id)
    delivery = seed_delivery(upstreams, owner.tenant_id, subscription.id, 9001)
    headers = bearer(stranger.token)
    sid = subscription.id
    assert problem(await http.get(f"/api/webhooks/{sid}", headers=headers)) == (404, "WEBHOOK_NOT_FOUND")
    assert problem(await http.patch(f"/api/webhooks/{sid}", headers=headers, json={"state": "paused"})) == (
        404, "WEBHOOK_NOT_FOUND")
    assert problem(await http.delete(f"/api/webhooks/{sid}", headers=headers)) == (404, "WEBHOOK_NOT_FOUND")
    assert problem(await http.post(f"/api/webhooks/{sid}/redeliver", headers=headers, json={
        "from": "2026-11-29T00:00:00Z", "to": "2026-11-30T00:00:00Z"})) == (404, "WEBHOOK_NOT_FOUND")
    assert problem(await http.get(f"/api/webhooks/deliveries/{delivery.id}", headers=headers)) == (
        404, "WEBHOOK_DELIVERY_NOT_FOUND")
    assert problem(await http.post(f"/api/webhooks/deliveries/{delivery.id}/redeliver", headers=headers)) == (
        404, "WEBHOOK_DELIVERY_NOT_FOUND")
    assert (await http.get("/api/webhooks", headers=headers)).json()["items"] == []
    foreign = await http.get("/api/webhooks/deliveries", params={"subscriptionId": sid}, headers=headers)
    assert foreign.status_code == 200 and foreign.json() == {"items": [], "nextCursor": None}
    assert upstreams.directory.webhooks[sid].state == "active" and sid in upstreams.directory.webhooks
    assert upstreams.directory.webhook_deliveries[delivery.id].state == "delivered"

    # an upstream that answered another tenant's resource anyway is still 404 at the edge
    leaked = upstreams.webhooks.add_subscription(owner.tenant_id, subscription_id=f"leaky-{sid}")
    leaked_delivery = seed_delivery(upstreams, owner.tenant_id, sid, 9002)
    upstreams.directory.webhook_deliveries["leaky-9002"] = leaked_delivery
    assert problem(await http.get(f"/api/webhooks/{leaked.id}", headers=headers)) == (404, "NOT_FOUND")
    assert problem(await http.get("/api/webhooks/deliveries/leaky-9002", headers=headers)) == (404, "NOT_FOUND")


async def test_a_patch_sends_only_the_fields_given_and_delete_removes(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    headers = bearer(admin.token)
    sid = upstreams.webhooks.add_subscription(admin.tenant_id).id

    paused = await http.patch(f"/api/webhooks/{sid}", headers=headers, json={"state": "paused"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["state"], paused.json()["url"], paused.json()["events"]) == (
        "paused", "https://n8n.hotel.example/hook", ["message.received"])
    assert paused.json()["pausedReason"] == f"paused by {admin.user_id}"
    request = requests_of(upstreams, "UpdateSubscription")[-1]
    assert request.HasField("state") and not request.HasField("url") and not request.HasField("events")

    moved = await http.patch(f"/api/webhooks/{sid}", headers=headers,
                             json={"url": HOOK, "events": ["escalation.raised"], "state": "active"})
    assert (moved.json()["url"], moved.json()["events"], moved.json()["state"], moved.json()["pausedReason"]) == (
        HOOK, ["escalation.raised"], "active", None)
    request = requests_of(upstreams, "UpdateSubscription")[-1]
    assert (request.url, list(request.events.items), request.state) == (HOOK, ["escalation.raised"], "active")

    # an empty list is a change the service refuses; nothing (or only nulls) is refused at the edge
    assert problem(await http.patch(f"/api/webhooks/{sid}", headers=headers, json={"events": []})) == (
        400, "WEBHOOK_EVENTS_INVALID")
    assert requests_of(upstreams, "UpdateSubscription")[-1].HasField("events")
    for body in ({}, {"url": None}):
        assert problem(await http.patch(f"/api/webhooks/{sid}", headers=headers, json=body)) == (
            400, "VALIDATION_FAILED")
    assert problem(await http.patch(f"/api/webhooks/{sid}", headers=headers, json={"url": "http://localhost/x"})) == (
        400, "WEBHOOK_URL_NOT_ALLOWED")
    assert problem(await http.patch(f"/api/webhooks/{sid}", headers=headers, json={"state": "stopped"})) == (
        400, "WEBHOOK_STATE_INVALID")

    deleted = await http.delete(f"/api/webhooks/{sid}", headers=headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert problem(await http.get(f"/api/webhooks/{sid}", headers=headers)) == (404, "WEBHOOK_NOT_FOUND")


async def test_the_delivery_log_pages_filters_and_shows_each_attempts_outcome(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    headers = bearer(admin.token)
    sid = upstreams.webhooks.add_subscription(admin.tenant_id).id
    delivered = seed_delivery(upstreams, admin.tenant_id, sid, 101, last_status_code=200, last_latency_ms=0,
                              delivered_at="2026-11-29T10:00:01.250Z")
    failing = seed_delivery(upstreams, admin.tenant_id, sid, 102, state="pending", attempts=3,
                            last_error="HTTP 500", last_status_code=500, last_latency_ms=87,
                            next_attempt_at="2026-11-29T10:05:00.000Z", created_at="2026-11-29T10:01:00.000Z")
    seed_delivery(upstreams, admin.tenant_id, sid, 103, state="dead", last_error="timed out after 10 s",
                  created_at="2026-11-29T10:02:00.000Z")

    first = await http.get("/api/webhooks/deliveries", params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    assert [item["id"] for item in first.json()["items"]] == ["103", "102"] and first.json()["nextCursor"]
    second = await http.get("/api/webhooks/deliveries", params={"limit": 2, "cursor": first.json()["nextCursor"]},
                            headers=headers)
    assert [item["id"] for item in second.json()["items"]] == ["101"] and second.json()["nextCursor"] is None
    shown = {item["id"]: item for item in [*first.json()["items"], *second.json()["items"]]}
    assert all(set(item) == DELIVERY_KEYS for item in shown.values())
    assert shown["102"] == {
        "id": "102", "subscriptionId": sid, "eventId": "evt-102", "eventType": "message.received",
        "state": "pending", "attempts": 3, "lastError": "HTTP 500", "lastStatusCode": 500, "latencyMs": 87,
        "nextAttemptAt": "2026-11-29T10:05:00.000Z", "expiresAt": "2026-11-30T10:00:00.000Z",
        "createdAt": "2026-11-29T10:01:00.000Z", "deliveredAt": None,
        "envelope": json.loads(failing.envelope_json)}
    assert (shown["101"]["lastStatusCode"], shown["101"]["latencyMs"], shown["101"]["lastError"]) == (200, 0, None)
    assert (shown["103"]["lastStatusCode"], shown["103"]["latencyMs"]) == (None, None)  # no answer, no figure
    one = await http.get("/api/webhooks/deliveries/101", headers=headers)
    assert one.status_code == 200 and one.json() == shown["101"] and delivered.event_id == "evt-101"

    filtered = await http.get("/api/webhooks/deliveries", headers=headers, params={
        "subscriptionId": sid, "state": "dead", "from": "2026-11-29T11:01:30+01:00", "to": "2026-11-29T10:30:00Z"})
    assert [item["id"] for item in filtered.json()["items"]] == ["103"]
    request = requests_of(upstreams, "ListDeliveries")[-1]
    assert (request.subscription_id, request.state, request.from_time, request.to_time, request.limit) == (
        sid, "dead", "2026-11-29T10:01:30.000Z", "2026-11-29T10:30:00.000Z", 50)

    refusals = [
        ({"from": "2026-11-29T10:00:00"}, (400, "VALIDATION_FAILED")),  # no offset
        ({"limit": 0}, (400, "VALIDATION_FAILED")),
        ({"limit": 101}, (400, "VALIDATION_FAILED")),
        ({"cursor": "junk"}, (400, "INVALID_CURSOR")),
        ({"from": "2026-11-29T11:00:00Z", "to": "2026-11-29T10:00:00Z"}, (400, "WEBHOOK_TIME_RANGE_INVALID")),
    ]
    for params, expected in refusals:
        assert problem(await http.get("/api/webhooks/deliveries", params=params, headers=headers)) == expected, params


async def test_redelivery_of_one_and_of_a_range(
    http: httpx.AsyncClient, make_account: Callable[..., Any], upstreams: Any
) -> None:
    admin = make_account(role="admin")
    headers = bearer(admin.token)
    sid = upstreams.webhooks.add_subscription(admin.tenant_id).id
    seed_delivery(upstreams, admin.tenant_id, sid, 201, state="dead", created_at="2026-11-28T09:00:00.000Z")
    seed_delivery(upstreams, admin.tenant_id, sid, 202, created_at="2026-11-28T10:00:00.000Z")
    seed_delivery(upstreams, admin.tenant_id, sid, 203, created_at="2026-11-28T12:00:00.000Z")

    again = await http.post("/api/webhooks/deliveries/201/redeliver", headers=headers)
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["state"], again.json()["deliveredAt"]) == ("201", "pending", None)
    assert problem(await http.post("/api/webhooks/deliveries/201/redeliver", headers=headers)) == (
        422, "WEBHOOK_DELIVERY_PENDING")

    ranged = await http.post(f"/api/webhooks/{sid}/redeliver", headers=headers,
                             json={"from": "2026-11-28T10:00:00+00:00", "to": "2026-11-28T13:00:00+01:00"})
    assert ranged.status_code == 200 and ranged.json() == {"count": 1}  # 202 only: [10:00, 12:00) UTC
    request = requests_of(upstreams, "RedeliverRange")[-1]
    assert (request.subscription_id, request.from_time, request.to_time) == (
        sid, "2026-11-28T10:00:00.000Z", "2026-11-28T12:00:00.000Z")
    assert upstreams.directory.webhook_deliveries["202"].state == "pending"
    assert upstreams.directory.webhook_deliveries["203"].state == "delivered"

    for body, expected in (
        ({"from": "2026-11-28T10:00:00Z"}, (400, "VALIDATION_FAILED")),
        ({"from": "2026-11-28T10:00:00", "to": "2026-11-28T12:00:00Z"}, (400, "VALIDATION_FAILED")),
        ({"from": "2026-11-28T12:00:00Z", "to": "2026-11-28T10:00:00Z"}, (400, "WEBHOOK_TIME_RANGE_INVALID")),
    ):
        assert problem(await http.post(f"/api/webhooks/{sid}/redeliver", headers=headers, json=body)) == expected, \
            body
