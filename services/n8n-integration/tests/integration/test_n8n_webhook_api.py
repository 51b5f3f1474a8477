"""The transport-free use cases: who may call them, what they refuse (with stable codes), and what an update does."""

from __future__ import annotations

import pytest
from eva_common.audit import Actor
from eva_common.auth import Principal
from eva_common.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied

pytestmark = pytest.mark.integration


async def _code(call) -> str:
    with pytest.raises(DomainError) as raised:
        await call
    return raised.value.code


async def test_only_a_tenants_admins_manage_webhooks(make_app, receiver, kit) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    attendant = kit.admin(tenant, role="attendant")
    key = Actor(principal=Principal(subject="apikey:k1", kind="api_key", role="api_key", tenant_id=tenant, token="",
                                    token_id="", issued_at=0, expires_at=0, scopes=("conversations:write",)))
    service = Actor(principal=Principal(subject="messaging", kind="service", role="service", tenant_id=None,
                                        token="", token_id="", issued_at=0, expires_at=0))
    for actor, code in ((attendant, "FORBIDDEN_ROLE"), (key, "API_KEY_NOT_ALLOWED"), (service, "USER_ONLY")):
        with pytest.raises(PermissionDenied) as raised:
            await app.webhooks.create_subscription(actor=actor, url=receiver.url("/x"), events=["message.received"])
        assert raised.value.code == code
        with pytest.raises(PermissionDenied):
            await app.webhooks.list_deliveries(principal=actor.principal)
    assert await app.webhooks.list_subscriptions(principal=kit.admin(tenant).principal) == []


async def test_bad_requests_are_refused_with_stable_codes(make_app, receiver, kit) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    actor = kit.admin(tenant)
    create = app.webhooks.create_subscription
    assert await _code(create(actor=actor, url=receiver.url("/x"), events=[])) == "WEBHOOK_EVENTS_INVALID"
    assert await _code(create(actor=actor, url=receiver.url("/x"), events=["message.sent"])) == "WEBHOOK_EVENTS_INVALID"
    assert await _code(create(actor=actor, url=receiver.url("/x"), events=["message.received"],
                              secret="short")) == "WEBHOOK_SECRET_INVALID"
    assert await _code(create(actor=actor, url="gopher://x", events=["message.received"])) == "WEBHOOK_URL_INVALID"
    created = await create(actor=actor, url=receiver.url("/x"), events=["message.received", "message.received"])
    assert created.subscription.events == ["message.received"]
    update = app.webhooks.update_subscription
    sid = created.subscription.id
    assert await _code(update(actor=actor, subscription_id=sid, state="deleted")) == "WEBHOOK_STATE_INVALID"
    assert await _code(update(actor=actor, subscription_id=sid, url="http://10.0.0.1/")) == "WEBHOOK_URL_NOT_ALLOWED"
    assert await _code(update(actor=actor, subscription_id="not-an-id", state="paused")) == "WEBHOOK_NOT_FOUND"
    assert await _code(app.webhooks.list_deliveries(principal=actor.principal, cursor="junk")) == "INVALID_CURSOR"
    assert await _code(app.webhooks.list_deliveries(principal=actor.principal, limit=500)) == "VALIDATION_FAILED"
    with pytest.raises(InvalidArgument):
        await app.webhooks.list_deliveries(principal=actor.principal, state="lost")


async def test_updates_change_url_events_and_state_and_deletion_removes_the_log(make_app, receiver, kit,
                                                                                app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    actor = kit.admin(tenant)
    created = await app.webhooks.create_subscription(actor=actor, url=receiver.url("/old"),
                                                     events=["message.received"])
    sid = created.subscription.id
    paused = await app.webhooks.update_subscription(actor=actor, subscription_id=sid, state="paused")
    assert paused.state == "paused" and paused.paused_reason is not None
    moved = await app.webhooks.update_subscription(actor=actor, subscription_id=sid, url=receiver.url("/new"),
                                                   events=["escalation.raised"], state="active")
    assert (moved.url, moved.events, moved.state, moved.paused_reason) == (
        receiver.url("/new"), ["escalation.raised"], "active", None)
    assert moved.updated_at > created.subscription.updated_at
    assert await app.fanout.apply([kit.message_received(tenant, "c")]) == 0  # no longer asked for
    await app.webhooks.update_subscription(actor=actor, subscription_id=sid, events=["message.received"])
    assert await app.fanout.apply([kit.message_received(tenant, "c")]) == 1
    await app.webhooks.delete_subscription(actor=actor, subscription_id=sid)
    assert await app.webhooks.list_subscriptions(principal=actor.principal) == []
    assert await kit.rows(app_db, tenant, "SELECT 1 FROM webhook_deliveries") == []
    outbox = await kit.rows(app_db, tenant, "SELECT convert_from(payload, 'UTF8') AS body FROM outbox")
    actions = [body for row in outbox for body in [row["body"]] if "webhook.subscription_" in body]
    assert len(actions) == 5  # created, 3 updates, deleted: each audited
    assert created.secret not in "".join(row["body"] for row in outbox)


async def test_a_tenant_has_at_most_twenty_subscriptions(make_app, receiver, kit) -> None:
    app = make_app()
    actor = kit.admin(kit.new_tenant())
    for n in range(20):
        await app.webhooks.create_subscription(actor=actor, url=receiver.url(f"/{n}"), events=["message.status"])
    with pytest.raises(FailedPrecondition) as raised:
        await app.webhooks.create_subscription(actor=actor, url=receiver.url("/21"), events=["message.status"])
    assert raised.value.code == "WEBHOOK_LIMIT_REACHED"
