"""The SSRF guard end to end: subscriptions to private, loopback, link-local and IPv4-mapped addresses are refused
unless the operator allows them; a host whose DNS answer turns into 127.0.0.1 after the subscription was made is
refused at the attempt (nothing reaches the loopback receiver); a redirect to 127.0.0.1 is not followed."""

from __future__ import annotations

import asyncio

import pytest
from eva_common.errors import InvalidArgument

pytestmark = pytest.mark.integration

PUBLIC_ADDRESS = "93.184.216.34"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook",
    "http://localhost:8080/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
])
async def test_private_loopback_link_local_and_mapped_addresses_are_refused(make_app, kit, url: str) -> None:
    app = make_app(webhook_allow_private_networks=[])
    with pytest.raises(InvalidArgument) as raised:
        await app.webhooks.create_subscription(actor=kit.admin(kit.new_tenant()), url=url,
                                               events=["message.received"])
    assert raised.value.code == "WEBHOOK_URL_NOT_ALLOWED"


async def test_a_host_resolving_to_a_private_address_is_refused(make_app, kit) -> None:
    resolver = kit.fixed_resolver({"intranet.hotel.test": [PUBLIC_ADDRESS, "10.0.0.5"]})
    app = make_app(webhook_allow_private_networks=[], webhook_allow_http=False, resolver=resolver)
    with pytest.raises(InvalidArgument) as raised:  # one bad answer among good ones is enough
        await app.webhooks.create_subscription(actor=kit.admin(kit.new_tenant()),
                                               url="https://intranet.hotel.test/hook", events=["message.received"])
    assert raised.value.code == "WEBHOOK_URL_NOT_ALLOWED"
    with pytest.raises(InvalidArgument) as raised:
        await app.webhooks.create_subscription(actor=kit.admin(kit.new_tenant()),
                                               url="https://nowhere.hotel.test/hook", events=["message.received"])
    assert raised.value.code == "WEBHOOK_URL_UNRESOLVABLE"


async def test_https_is_required_unless_the_operator_allows_http(make_app, kit) -> None:
    resolver = kit.fixed_resolver({"n8n.hotel.test": [PUBLIC_ADDRESS]})
    strict = make_app(webhook_allow_http=False, resolver=resolver)
    with pytest.raises(InvalidArgument) as raised:
        await strict.webhooks.create_subscription(actor=kit.admin(kit.new_tenant()), url="http://n8n.hotel.test/h",
                                                  events=["message.received"])
    assert raised.value.code == "WEBHOOK_URL_NOT_ALLOWED"
    created = await strict.webhooks.create_subscription(actor=kit.admin(kit.new_tenant()),
                                                        url="https://n8n.hotel.test/h", events=["message.received"])
    assert created.subscription.url == "https://n8n.hotel.test/h"


async def test_loopback_is_allowed_when_the_operator_allows_it(make_app, receiver, kit, app_db) -> None:
    app = make_app(webhook_allow_private_networks=["127.0.0.0/8"])
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/local"),
                                                     events=["message.received"])
    assert created.subscription.state == "active"
    with pytest.raises(InvalidArgument):  # only the networks allowed: 10/8 is still refused
        await app.webhooks.create_subscription(actor=kit.admin(tenant), url="http://10.0.0.1/x",
                                               events=["message.received"])
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def received():
        return receiver.on("/local")

    assert len(await kit.pump(app, received)) == 1


async def test_dns_rebinding_to_loopback_is_refused_at_the_attempt(make_app, receiver, kit, app_db) -> None:
    answers = {"rebind.hotel.test": [PUBLIC_ADDRESS]}
    app = make_app(webhook_allow_private_networks=[], resolver=kit.fixed_resolver(answers))
    tenant = kit.new_tenant()
    created = await app.webhooks.create_subscription(  # public when it was made
        actor=kit.admin(tenant), url=receiver.url("/rebound", host="rebind.hotel.test"),
        events=["message.received"])
    assert created.subscription.state == "active"
    answers["rebind.hotel.test"] = ["127.0.0.1"]  # the attacker's DNS now answers loopback (where the receiver is)
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def failed():
        rows = await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries")
        return rows[0] if rows[0]["attempts"] >= 1 else None

    row = await kit.pump(app, failed)
    assert row["state"] == "pending" and row["last_status_code"] is None
    assert row["last_error"].startswith("WEBHOOK_URL_NOT_ALLOWED")
    assert "loopback" in row["last_error"]
    assert receiver.requests == []  # nothing reached the loopback address


async def test_a_redirect_to_loopback_is_not_followed(make_app, receiver, kit, app_db) -> None:
    app = make_app()
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/moved"),
                                           events=["message.received"])
    receiver.script("/moved", f"redirect:{receiver.url('/internal-admin')}")
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def failed():
        rows = await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries")
        return rows[0] if rows[0]["attempts"] >= 1 else None

    row = await kit.pump(app, failed)
    assert row["state"] == "pending" and row["last_status_code"] == 302
    assert row["last_error"] == "redirect not followed (HTTP 302)"
    assert len(receiver.on("/moved")) == 1
    assert receiver.on("/internal-admin") == []


async def test_a_resolver_that_never_answers_fails_the_attempt_in_time(make_app, receiver, kit, app_db) -> None:
    answers = {"slow.hotel.test": ["127.0.0.1"]}
    table = kit.fixed_resolver(answers)
    stalled = asyncio.Event()

    async def resolver(host: str, port: int):
        if stalled.is_set():
            await asyncio.Event().wait()  # never answers
        return await table(host, port)

    app = make_app(resolver=resolver, webhook_timeout_seconds=0.3)
    tenant = kit.new_tenant()
    await app.webhooks.create_subscription(actor=kit.admin(tenant), url=receiver.url("/slow", host="slow.hotel.test"),
                                           events=["message.received"])
    stalled.set()
    await app.fanout.apply([kit.message_received(tenant, "conv-1")])

    async def failed():
        rows = await kit.rows(app_db, tenant, "SELECT * FROM webhook_deliveries")
        return rows[0] if rows[0]["attempts"] >= 1 else None

    row = await kit.pump(app, failed)
    assert row["last_error"] == "DNS timeout after 0.3s" and row["state"] == "pending"
    assert receiver.requests == []
