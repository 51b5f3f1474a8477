"""Pure rules of the webhooks: the retry schedule, expiry and pausing, the signature, the public events, settings."""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from eva_events import conversation, messaging
from eva_events.client_views import CLIENT_VIEWS
from eva_events.envelope import make_event
from n8n_service.events import NOT_DELIVERED_TYPES, PUBLIC_TYPES, public_type, to_public
from n8n_service.retry import PausePolicy, RetryPolicy
from n8n_service.settings import Settings
from n8n_service.signing import signature, signature_header, verify

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def test_the_retry_schedule_doubles_from_10_seconds_to_an_hour() -> None:
    policy = RetryPolicy()
    assert policy.schedule(11) == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    # about 32 attempts fit in 24 hours; the expiry, not a count, ends a delivery
    assert sum(policy.schedule(30)) < 24 * 3600 < sum(policy.schedule(32))


def test_jitter_only_shortens_a_wait_by_at_most_its_share() -> None:
    policy = RetryPolicy(jitter=0.2)
    assert policy.delay(3, 0.0) == 40
    assert policy.delay(3, 0.999) == pytest.approx(32.008)
    assert all(32 <= policy.delay(3, fraction / 10) <= 40 for fraction in range(10))


def test_a_failure_at_or_after_the_expiry_is_dead_and_no_wait_goes_past_it() -> None:
    policy = RetryPolicy()
    expires = T0 + timedelta(hours=24)
    assert policy.next_attempt(failed_at=T0, attempt=1, expires_at=expires, random_fraction=0) == T0 + timedelta(
        seconds=10)
    late = expires - timedelta(seconds=5)
    assert policy.next_attempt(failed_at=late, attempt=12, expires_at=expires, random_fraction=0) == expires
    assert policy.next_attempt(failed_at=expires, attempt=13, expires_at=expires, random_fraction=0) is None


def test_a_subscription_is_paused_after_enough_failures_for_long_enough() -> None:
    policy = PausePolicy(after_failures=20, min_failing_seconds=3600)
    since = T0
    assert not policy.should_pause(consecutive_failures=19, failing_since=since, now=T0 + timedelta(hours=5))
    assert not policy.should_pause(consecutive_failures=500, failing_since=since, now=T0 + timedelta(minutes=59))
    assert policy.should_pause(consecutive_failures=20, failing_since=since, now=T0 + timedelta(hours=1))


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"e1"}'
    assert signature("s3cret", body, 1700000000) == hmac.new(b"s3cret", b"1700000000." + body,
                                                              hashlib.sha256).hexdigest()
    header = signature_header("s3cret", body, 1700000000)
    assert header == f"t=1700000000,v1={signature('s3cret', body, 1700000000)}"
    assert verify("s3cret", body, header, now=1700000100)
    assert not verify("s3cret", body, header, now=1700000000 + 301)  # too old: a replay
    assert not verify("s3cret", body, "t=x,v1=y", now=int(time.time()))


def test_every_internal_type_is_delivered_or_deliberately_not() -> None:
    internal = messaging.EVENT_TYPES | conversation.EVENT_TYPES
    delivered = {kind for kind in internal if kind not in NOT_DELIVERED_TYPES and kind != messaging.MESSAGE_CREATED}
    assert delivered | NOT_DELIVERED_TYPES | {messaging.MESSAGE_CREATED} == internal
    assert all(kind in CLIENT_VIEWS for kind in delivered | {messaging.MESSAGE_CREATED})
    assert {public_type(make_event(kind, tenant_id="t", data={})) for kind in delivered} == set(PUBLIC_TYPES)


def test_only_coexistence_echoes_of_sent_messages_are_delivered_and_keys_follow_the_conversation() -> None:
    echo = make_event(messaging.MESSAGE_CREATED, tenant_id="t", data={"source": "business_app", "conversationId": "c"})
    assert public_type(echo) == "message.received"
    assert public_type(make_event(messaging.MESSAGE_CREATED, tenant_id="t", data={"source": "eva"})) is None
    created = to_public(make_event(conversation.CONVERSATION_CREATED, tenant_id="t", data={"id": "c9"}))
    assert created is not None and created.ordering_key == "conversation:c9"
    status = to_public(make_event(messaging.MESSAGE_STATUS_CHANGED, tenant_id="t",
                                  data={"id": "m", "conversationId": "c1", "status": "READ", "seq": 4}))
    assert status is not None and status.ordering_key == "conversation:c1"
    assert status.data == {"messageId": "m", "conversationId": "c1", "status": "READ"}
    orphan = to_public(make_event(conversation.ESCALATION_UPDATED, tenant_id="t", data={"id": "e"}))
    assert orphan is not None and orphan.ordering_key == "tenant:t"
    envelope = status.envelope(7)
    assert set(envelope) == {"id", "type", "tenantId", "occurredAt", "seq", "data"} and envelope["seq"] == 7


def _settings(**values: object) -> Settings:
    key = base64.b64encode(os.urandom(32)).decode()
    return Settings(database_url="postgresql+asyncpg://u:p@h/d", kafka_bootstrap="k", encryption_keys={"k1": key},
                    encryption_active_key="k1", service_client_secret="a-real-client-secret-1", **values)  # type: ignore[arg-type]


def test_settings_take_the_allowed_networks_as_a_list_and_refuse_junk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8, ::1/128")
    assert _settings().webhook_allow_private_networks == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS", '["10.0.0.0/8"]')
    assert _settings().webhook_allow_private_networks == ["10.0.0.0/8"]
    monkeypatch.setenv("EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "everything")
    with pytest.raises(ValueError):
        _settings()
    monkeypatch.delenv("EVA_WEBHOOK_ALLOW_PRIVATE_NETWORKS")
    defaults = _settings()
    assert defaults.webhook_allow_private_networks == [] and defaults.webhook_allow_http is False
    assert defaults.webhook_max_age_seconds == 24 * 3600
