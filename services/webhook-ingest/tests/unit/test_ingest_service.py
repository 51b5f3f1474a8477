"""The ingest use cases with fakes only (no I/O)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from eva_common.errors import InvalidArgument, PermissionDenied, Unavailable
from eva_events.envelope import EventEnvelope
from eva_testing.kafka import RecordingPublisher
from webhook_ingest_service.errors import RetryLater, SignatureInvalid, TooManyUnverified
from webhook_ingest_service.ratelimit import LimitDecision
from webhook_ingest_service.repository import UnroutedDelivery
from webhook_ingest_service.service import WebhookIngest
from webhook_ingest_service.tenants import TenantRoute

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TOPIC = "wa.webhooks.v1"
Signer = Callable[[bytes, str], str]


class FakeTenants:
    def __init__(self, routes: Mapping[str, TenantRoute] | None = None, tokens: Mapping[str, str] | None = None,
                 failure: Exception | None = None, wabas: Mapping[str, TenantRoute] | None = None) -> None:
        self.routes = dict(routes or {})
        self.wabas = dict(wabas or {})
        self.waba_lookups: list[str] = []
        self.tokens = dict(tokens or {})
        self.failure = failure
        self.lookups: list[str] = []

    async def resolve_phone_number(self, phone_number_id: str) -> TenantRoute | None:
        self.lookups.append(phone_number_id)
        if self.failure is not None:
            raise self.failure
        return self.routes.get(phone_number_id)

    async def resolve_waba_id(self, waba_id: str) -> TenantRoute | None:
        self.waba_lookups.append(waba_id)
        if self.failure is not None:
            raise self.failure
        return self.wabas.get(waba_id)

    async def check_verify_token(self, verify_token: str) -> str | None:
        if self.failure is not None:
            raise self.failure
        return self.tokens.get(verify_token)


class FakeUnrouted:
    def __init__(self) -> None:
        self.stored: list[UnroutedDelivery] = []

    async def record_unrouted(self, deliveries: list[UnroutedDelivery]) -> None:
        self.stored.extend(deliveries)


class FakeLimiter:
    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.hits: list[str] = []

    async def hit(self, client_ip: str) -> LimitDecision:
        self.hits.append(client_ip)
        allowed = self.hits.count(client_ip) <= self.limit
        return LimitDecision(allowed=allowed, retry_after_seconds=0 if allowed else 42)


class HangingPublisher:
    async def publish(self, topic: str, *, key: bytes | None, value: bytes,
                      headers: Mapping[str, str] | None = None) -> None:
        await asyncio.Event().wait()


def make_ingest(
    *,
    tenants: FakeTenants,
    publisher: Any = None,
    unrouted: FakeUnrouted | None = None,
    limiter: FakeLimiter | None = None,
    platform_app_secret: str | None = None,
    platform_verify_token: str | None = None,
    ack_timeout: float = 1.0,
) -> WebhookIngest:
    return WebhookIngest(
        tenants=tenants,
        publisher=publisher if publisher is not None else RecordingPublisher(),
        unrouted=unrouted or FakeUnrouted(),
        limiter=limiter or FakeLimiter(),
        topic=TOPIC,
        platform_app_secret=platform_app_secret,
        platform_verify_token=platform_verify_token,
        ack_timeout_seconds=ack_timeout,
        retry_after_seconds=7,
        clock=lambda: NOW,
    )


def two_tenant_body() -> bytes:
    def change(pn: str, wamid: str) -> dict[str, Any]:
        return {"field": "messages", "value": {"metadata": {"phone_number_id": pn},
                                               "messages": [{"id": wamid, "type": "text"}]}}

    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "waba-a", "changes": [change("pn-a", "wamid.A1")]},
        {"id": "waba-b", "changes": [change("pn-b", "wamid.B1")]},
        {"id": "waba-z", "changes": [change("pn-z", "wamid.Z1")]},
    ]}, separators=(",", ":")).encode()


def route(tenant_id: str, secret: str = "") -> TenantRoute:
    return TenantRoute(tenant_id=tenant_id, tenant_status="active", app_secret=secret)


async def test_reference_vector_is_published_once_with_its_envelope(
    vector_body: bytes, vector_signature: str, vector_secret: str, vector_phone_number_id: str
) -> None:
    publisher = RecordingPublisher()
    limiter = FakeLimiter()
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1", vector_secret)}),
                         publisher=publisher, limiter=limiter)

    accepted = await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")

    assert len(publisher.records) == 1
    topic, key, value, headers = publisher.records[0]
    assert topic == TOPIC and key == vector_phone_number_id.encode()
    event = EventEnvelope.from_bytes(value)
    assert event.type == "webhook.received" and event.tenant_id == "t-1"
    assert event.data["deliveryId"] == accepted.delivery_ids[0]
    assert event.data["phoneNumberId"] == vector_phone_number_id
    assert event.data["payload"] == json.loads(vector_body)
    assert event.data["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] == (
        "café 😀 https://x.y/z")
    assert headers == {"event-id": event.id, "event-type": "webhook.received", "tenant-id": "t-1",
                       "delivery-id": accepted.delivery_ids[0]}
    assert limiter.hits == []  # valid deliveries never touch the rate limiter


async def test_tenant_without_own_secret_verifies_with_the_platform_secret(
    vector_body: bytes, vector_signature: str, vector_secret: str, vector_phone_number_id: str
) -> None:
    publisher = RecordingPublisher()
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1")}), publisher=publisher,
                         platform_app_secret=vector_secret)
    await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert len(publisher.records) == 1


async def test_tenant_secret_wins_over_the_platform_secret(
    vector_body: bytes, vector_signature: str, vector_secret: str, vector_phone_number_id: str
) -> None:
    publisher = RecordingPublisher()
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1", "tenant-own-secret")}),
                         publisher=publisher, platform_app_secret=vector_secret)
    with pytest.raises(SignatureInvalid) as raised:
        await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert raised.value.code == "SIGNATURE_INVALID" and raised.value.http_status == 401
    assert publisher.records == []


@pytest.mark.parametrize("signature", [None, "sha256=00", "sha1=abc", "sha256=" + "0" * 64])
async def test_unverifiable_deliveries_store_nothing(
    signature: str | None, vector_body: bytes, vector_secret: str, vector_phone_number_id: str
) -> None:
    publisher, unrouted, limiter = RecordingPublisher(), FakeUnrouted(), FakeLimiter()
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1", vector_secret)}),
                         publisher=publisher, unrouted=unrouted, limiter=limiter, platform_app_secret=vector_secret)
    with pytest.raises(SignatureInvalid):
        await ingest.accept_delivery(body=vector_body, signature=signature, client_ip="10.0.0.9")
    assert publisher.records == [] and unrouted.stored == []
    assert limiter.hits == ["10.0.0.9"]


async def test_missing_signature_is_refused_before_any_tenant_lookup(vector_body: bytes) -> None:
    tenants = FakeTenants()
    with pytest.raises(SignatureInvalid):
        await make_ingest(tenants=tenants).accept_delivery(body=vector_body, signature=None, client_ip="1.1.1.1")
    assert tenants.lookups == []


async def test_multi_tenant_delivery_is_split_into_one_record_per_tenant(sign: Signer) -> None:
    body = two_tenant_body()
    publisher, unrouted = RecordingPublisher(), FakeUnrouted()
    tenants = FakeTenants({"pn-a": route("t-a", "shared-app"), "pn-b": route("t-b", "shared-app")})
    ingest = make_ingest(tenants=tenants, publisher=publisher, unrouted=unrouted)

    accepted = await ingest.accept_delivery(body=body, signature=sign(body, "shared-app"), client_ip="10.0.0.1")

    by_tenant = {EventEnvelope.from_bytes(value).tenant_id: (key, EventEnvelope.from_bytes(value))
                 for _, key, value, _ in publisher.records}
    assert set(by_tenant) == {"t-a", "t-b"}
    key_a, event_a = by_tenant["t-a"]
    assert key_a == b"pn-a"
    assert [e["id"] for e in event_a.data["payload"]["entry"]] == ["waba-a"]
    assert [e["id"] for e in by_tenant["t-b"][1].data["payload"]["entry"]] == ["waba-b"]
    assert len(set(accepted.delivery_ids)) == 2
    # pn-z belongs to nobody: verified by the same app, so kept aside, not published
    assert [item.routing_key for item in unrouted.stored] == ["pn-z"]
    assert unrouted.stored[0].received_at == NOW
    assert [e["id"] for e in unrouted.stored[0].payload["entry"]] == ["waba-z"]
    assert accepted.unrouted_ids == (unrouted.stored[0].delivery_id,)


async def test_a_tenant_whose_secret_does_not_verify_fails_the_whole_delivery(sign: Signer) -> None:
    body = two_tenant_body()
    publisher, unrouted = RecordingPublisher(), FakeUnrouted()
    tenants = FakeTenants({"pn-a": route("t-a", "app-one"), "pn-b": route("t-b", "app-two")})
    ingest = make_ingest(tenants=tenants, publisher=publisher, unrouted=unrouted)
    with pytest.raises(SignatureInvalid):
        await ingest.accept_delivery(body=body, signature=sign(body, "app-one"), client_ip="10.0.0.1")
    assert publisher.records == [] and unrouted.stored == []


async def test_unowned_number_verified_by_the_platform_is_kept_unrouted(
    vector_body: bytes, vector_signature: str, vector_secret: str
) -> None:
    publisher, unrouted = RecordingPublisher(), FakeUnrouted()
    ingest = make_ingest(tenants=FakeTenants(), publisher=publisher, unrouted=unrouted,
                         platform_app_secret=vector_secret)
    accepted = await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert publisher.records == []
    assert accepted.delivery_ids == () and len(accepted.unrouted_ids) == 1
    assert unrouted.stored[0].payload == json.loads(vector_body)
    assert unrouted.stored[0].routing_key == "106540352242922"


async def test_unowned_number_without_a_platform_secret_is_refused(vector_body: bytes, vector_signature: str) -> None:
    unrouted = FakeUnrouted()
    ingest = make_ingest(tenants=FakeTenants(), unrouted=unrouted)
    with pytest.raises(SignatureInvalid):
        await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert unrouted.stored == []


async def test_malformed_json_is_refused_and_counted(vector_signature: str) -> None:
    limiter = FakeLimiter()
    ingest = make_ingest(tenants=FakeTenants(), limiter=limiter)
    with pytest.raises(InvalidArgument) as raised:
        await ingest.accept_delivery(body=b'{"entry": [', signature=vector_signature, client_ip="10.0.0.2")
    assert raised.value.http_status == 400 and raised.value.code == "MALFORMED_PAYLOAD"
    assert limiter.hits == ["10.0.0.2"]


async def test_unverifiable_requests_over_the_limit_get_429_but_valid_ones_still_pass(
    vector_body: bytes, vector_signature: str, vector_secret: str, vector_phone_number_id: str
) -> None:
    publisher, limiter = RecordingPublisher(), FakeLimiter(limit=2)
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1", vector_secret)}),
                         publisher=publisher, limiter=limiter)
    forged = "sha256=" + "1" * 64
    for _ in range(2):
        with pytest.raises(SignatureInvalid):
            await ingest.accept_delivery(body=vector_body, signature=forged, client_ip="6.6.6.6")
    with pytest.raises(TooManyUnverified) as raised:
        await ingest.accept_delivery(body=vector_body, signature=forged, client_ip="6.6.6.6")
    assert raised.value.http_status == 429 and raised.value.retry_after_seconds == 42
    await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="6.6.6.6")
    assert len(publisher.records) == 1


async def test_no_kafka_ack_within_the_deadline_asks_meta_to_retry(
    vector_body: bytes, vector_signature: str, vector_secret: str, vector_phone_number_id: str
) -> None:
    ingest = make_ingest(tenants=FakeTenants({vector_phone_number_id: route("t-1", vector_secret)}),
                         publisher=HangingPublisher(), ack_timeout=0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(RetryLater) as raised:
        await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert asyncio.get_running_loop().time() - started < 1.0
    assert raised.value.http_status == 503 and raised.value.code == "UNAVAILABLE"
    assert raised.value.retry_after_seconds == 7


async def test_tenant_service_down_asks_meta_to_retry(vector_body: bytes, vector_signature: str) -> None:
    publisher = RecordingPublisher()
    ingest = make_ingest(tenants=FakeTenants(failure=Unavailable("down")), publisher=publisher)
    with pytest.raises(RetryLater):
        await ingest.accept_delivery(body=vector_body, signature=vector_signature, client_ip="10.0.0.1")
    assert publisher.records == []


async def test_handshake_with_platform_or_tenant_token_echoes_the_challenge() -> None:
    ingest = make_ingest(tenants=FakeTenants(tokens={"hotel-token": "t-1"}), platform_verify_token="platform-token")
    for token in ("platform-token", "hotel-token"):
        assert await ingest.verify_subscription(mode="subscribe", verify_token=token, challenge="abc-123",
                                                client_ip="1.2.3.4") == "abc-123"


@pytest.mark.parametrize(("mode", "token"), [("subscribe", "nope"), ("unsubscribe", "platform-token"),
                                             ("SUBSCRIBE", "platform-token")])
async def test_handshake_with_wrong_token_or_mode_is_forbidden(mode: str, token: str) -> None:
    limiter = FakeLimiter()
    ingest = make_ingest(tenants=FakeTenants(), limiter=limiter, platform_verify_token="platform-token")
    with pytest.raises(PermissionDenied) as raised:
        await ingest.verify_subscription(mode=mode, verify_token=token, challenge="1158201444", client_ip="1.2.3.4")
    assert raised.value.http_status == 403
    assert limiter.hits == ["1.2.3.4"]


@pytest.mark.parametrize(("mode", "token", "challenge"), [(None, "t", "c"), ("subscribe", None, "c"),
                                                          ("subscribe", "t", None), ("subscribe", "t", "")])
async def test_handshake_without_its_parameters_is_a_bad_request(
    mode: str | None, token: str | None, challenge: str | None
) -> None:
    ingest = make_ingest(tenants=FakeTenants(), platform_verify_token="t")
    with pytest.raises(InvalidArgument) as raised:
        await ingest.verify_subscription(mode=mode, verify_token=token, challenge=challenge, client_ip="1.2.3.4")
    assert raised.value.http_status == 400


async def test_account_level_delivery_is_routed_by_its_waba_and_published(sign: Signer) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "waba-t", "time": 1749416383,
        "changes": [{"field": "message_template_status_update",
                     "value": {"event": "APPROVED", "message_template_id": 594425479261596}}]}]},
        separators=(",", ":")).encode()
    publisher, unrouted = RecordingPublisher(), FakeUnrouted()
    tenants = FakeTenants(wabas={"waba-t": route("t-w", "waba-secret")})
    ingest = make_ingest(tenants=tenants, publisher=publisher, unrouted=unrouted)

    accepted = await ingest.accept_delivery(body=body, signature=sign(body, "waba-secret"), client_ip="10.0.0.1")

    assert tenants.waba_lookups == ["waba-t"] and tenants.lookups == []
    assert unrouted.stored == [] and len(accepted.delivery_ids) == 1
    [(_, key, value, _)] = publisher.records
    event = EventEnvelope.from_bytes(value)
    assert key == b"waba-t" and event.tenant_id == "t-w" and event.data["phoneNumberId"] == "waba-t"
    assert event.data["payload"] == json.loads(body)
    with pytest.raises(SignatureInvalid):  # the WABA owner's secret, not another one
        await ingest.accept_delivery(body=body, signature=sign(body, "other-secret"), client_ip="10.0.0.1")
