"""Message templates on real PostgreSQL and Kafka, with the messaging service built by its composition root and an
in-test Graph API (httpx MockTransport) serving Meta's `message_templates` pages: SyncTemplates over several pages
(created, updated, removed, announced), ListTemplates (filters, keyset pages, syncedAt, who may call), a refused
token (190), Meta's three template webhooks (and an unknown template syncing its tenant), the periodic sync, and the
tenant-events consumer registering a tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
import pytest_asyncio
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.db import transaction
from eva_common.errors import FailedPrecondition
from eva_events.envelope import make_event
from eva_events.topics import dlq
from eva_events.webhook import WEBHOOK_RECEIVED, WebhookReceived
from eva_testing.db import TestDatabase, rls_problems
from eva_testing.infra import TestInfra
from eva_testing.kafka import create_topics, unique_topic
from eva_testing.tokens import TestTokenIssuer
from eva_testing.waiting import KafkaTools
from messaging_service.clients import SendingProfile
from messaging_service.main import MessagingApp
from messaging_service.settings import Settings
from messaging_service.templates import due_template_syncs
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

EXPIRED = "expired-token"


class Tokens:
    def __init__(self, issuer: TestTokenIssuer) -> None:
        self._issuer = issuer

    async def token(self) -> str:
        return self._issuer.service_token(service="messaging")


@dataclass
class Credentials:
    """TenantService.GetSendingCredentials stand-in: a tenant's WABA and token once configured."""

    wabas: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    health: list[tuple[str, bool, int]] = field(default_factory=list)

    async def access_token(self, *, tenant_id: str) -> str:
        return self.tokens.get(tenant_id, f"token-{tenant_id}")

    async def sending_profile(self, *, tenant_id: str) -> SendingProfile:
        if tenant_id not in self.wabas:
            raise FailedPrecondition("WhatsApp is not configured", code="WHATSAPP_NOT_CONFIGURED")
        return SendingProfile(
            tenant_id=tenant_id, phone_number_id="106540352242922", access_token=await self.access_token(
                tenant_id=tenant_id), waba_id=self.wabas[tenant_id], display_phone_number="15550783881",
            coexistence=False, throughput_mps=0, tenant_status="active", read_receipts="on_read",
            health="healthy" if (tenant_id, False, 190) not in self.health[-1:] else "unhealthy")

    async def report_health(self, *, tenant_id: str, healthy: bool, code: int = 0, detail: str = "") -> None:
        self.health.append((tenant_id, healthy, code))


@dataclass
class GraphTemplates:
    """`GET /v21.0/{waba}/message_templates?limit=&after=` in Meta's shape, `page_size` per page (whatever the limit),
    `paging.next` while more remain; 190 for the expired token."""

    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    requests: list[httpx.URL] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url)
        if request.headers.get("authorization") == f"Bearer {EXPIRED}":
            return httpx.Response(400, json={"error": {"code": 190, "type": "OAuthException",
                                                       "message": "Error validating access token"}})
        parts = request.url.path.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "message_templates":
            return httpx.Response(404, json={"error": {"code": 100, "message": "Unsupported get request"}})
        listed = self.templates.get(parts[1], [])
        start = int(request.url.params.get("after", "0"))
        page = listed[start:start + self.page_size]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + len(page))}}
        if start + len(page) < len(listed):
            paging["next"] = (f"https://graph.facebook.com/v21.0/{parts[1]}/message_templates?limit=100"
                              f"&after={start + len(page)}")
        return httpx.Response(200, json={"data": page, "paging": paging})


def graph_template(name: str, *, language: str = "en_US", status: str = "APPROVED", category: str = "UTILITY",
                   quality: str = "GREEN", meta_id: str | None = None) -> dict[str, Any]:
    return {"name": name, "parameter_format": "POSITIONAL", "language": language, "status": status,
            "category": category, "id": meta_id or str(uuid.uuid4().int)[:15], "quality_score": {"score": quality},
            "components": [{"type": "BODY", "text": "Hello {{1}}"}]}


@dataclass
class TemplateStack:
    app: MessagingApp
    stub: messaging_pb2_grpc.MessagingServiceAsyncStub
    graph: GraphTemplates
    credentials: Credentials
    database: TestDatabase

    @property
    def events_topic(self) -> str:
        return self.app.settings.messaging_events_topic

    @property
    def tenant_events_topic(self) -> str:
        return self.app.settings.tenant_events_topic


@pytest_asyncio.fixture(scope="module")
async def templates_stack(infra: TestInfra, database: TestDatabase,
                          issuer: TestTokenIssuer) -> AsyncIterator[TemplateStack]:
    webhooks, events, outcomes = unique_topic("wa-webhooks"), unique_topic("messaging-events"), unique_topic("outc")
    tenant_events = unique_topic("tenant-events")
    await create_topics(infra.kafka_bootstrap, webhooks, events, outcomes, tenant_events, dlq(webhooks),
                        dlq(tenant_events))
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database.app_url, redis_url=infra.redis_url, kafka_bootstrap=infra.kafka_bootstrap,
        conversation_grpc_target="127.0.0.1:1", webhooks_topic=webhooks, messaging_events_topic=events,
        webhook_outcomes_topic=outcomes, tenant_events_topic=tenant_events, consumer_group=f"messaging-{suffix}",
        tenant_events_consumer_group=f"messaging-tenant-events-{suffix}", environment="test",
        shutdown_grace_seconds=1, service_client_secret="unused-in-tests-tokens-injected",
        whatsapp_graph_url="http://graph.test", media_poll_seconds=3600, parked_status_expiry_interval_seconds=3600,
        template_graph_backoff_seconds=0)
    graph, credentials = GraphTemplates(), Credentials()
    app = MessagingApp(settings, verifier=issuer.verifier(), tokens=Tokens(issuer), credentials=credentials,
                       http_transport=httpx.MockTransport(graph.handle))
    await app.start(serve_http=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    try:
        yield TemplateStack(app=app, stub=messaging_pb2_grpc.MessagingServiceStub(channel), graph=graph,
                            credentials=credentials, database=database)
    finally:
        await channel.close()
        await app.stop()


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def new_tenant(stack: TemplateStack, *templates: dict[str, Any]) -> tuple[str, str]:
    tenant, waba = str(uuid.uuid4()), str(uuid.uuid4().int)[:15]
    stack.credentials.wabas[tenant] = waba
    stack.graph.templates[waba] = list(templates)
    return tenant, waba


async def template_rows(owner_db: asyncpg.Connection, tenant: str) -> dict[tuple[str, str], asyncpg.Record]:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        rows = await owner_db.fetch("SELECT * FROM templates WHERE tenant_id = $1", tenant)
    return {(row["name"], row["language"]): row for row in rows}


async def sync_row(owner_db: asyncpg.Connection, tenant: str) -> asyncpg.Record | None:
    async with owner_db.transaction():
        await owner_db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        row: asyncpg.Record | None = await owner_db.fetchrow("SELECT * FROM template_syncs WHERE tenant_id = $1",
                                                             tenant)
    return row


def template_events(records: list[Any], tenant: str) -> list[dict[str, Any]]:
    found = []
    for record in records:
        event = json.loads(record.value)
        if event["type"] == "template.updated" and event["tenantId"] == tenant:
            assert record.key.decode() == tenant  # keyed by tenant id
            found.append(event["data"])
    return found


async def test_a_sync_reads_every_page_then_updates_and_removes(
        templates_stack: TemplateStack, issuer: TestTokenIssuer, owner_db: asyncpg.Connection,
        kafka: KafkaTools) -> None:
    stack = templates_stack
    names = ["welcome", "checkout", "room_ready", "late_checkout", "invoice"]
    originals = [graph_template(name) for name in names]
    tenant, waba = new_tenant(stack, *originals)
    admin = auth(issuer.user_token(user_id="u-admin", tenant_id=tenant, role="admin"))

    first = await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=admin)
    assert (first.fetched, first.created, first.updated, first.removed) == (5, 5, 0, 0)
    assert first.synced_at.endswith("Z")
    asked = [url for url in stack.graph.requests if url.path == f"/v21.0/{waba}/message_templates"]
    assert [url.params.get("after") for url in asked] == [None, "2", "4"]  # three pages, always our Graph URL
    assert {url.host for url in asked} == {"graph.test"}
    rows = await template_rows(owner_db, tenant)
    assert set(rows) == {(name, "en_US") for name in names}
    assert rows[("welcome", "en_US")]["waba_id"] == waba and rows[("welcome", "en_US")]["quality"] == "GREEN"

    again = await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=admin)
    assert (again.fetched, again.created, again.updated, again.removed) == (5, 0, 0, 0)  # nothing changed

    changed = [item for item in originals if item["name"] != "invoice"]
    changed[0] = {**changed[0], "status": "PAUSED"}
    stack.graph.templates[waba] = changed
    third = await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=admin)
    assert (third.fetched, third.created, third.updated, third.removed) == (4, 0, 1, 1)
    rows = await template_rows(owner_db, tenant)
    assert ("invoice", "en_US") not in rows and rows[("welcome", "en_US")]["status"] == "PAUSED"

    def complete(records: list[Any]) -> bool:
        return len(template_events(records, tenant)) >= 7

    events = template_events(await kafka.wait_for(stack.events_topic, complete), tenant)
    assert sorted(event["name"] for event in events[:5]) == sorted(names)  # five created
    assert [(event["name"], event["status"]) for event in events[5:]] == [("welcome", "PAUSED"),
                                                                         ("invoice", "DELETED")]
    assert set(events[0]) == {"id", "name", "language", "status", "category", "quality", "parameterFormat",
                              "components", "rejectedReason", "updatedAt"}

    state = await sync_row(owner_db, tenant)
    assert state is not None and state["waba_id"] == waba and state["last_error"] is None
    assert (state["next_sync_at"] - state["synced_at"]).total_seconds() == pytest.approx(3600, abs=1)


async def test_list_templates_filters_pages_and_says_when_it_synced(
        templates_stack: TemplateStack, issuer: TestTokenIssuer) -> None:
    stack = templates_stack
    tenant, _ = new_tenant(stack, graph_template("welcome"), graph_template("welcome", language="pt_BR"),
                           graph_template("promo", category="MARKETING", status="REJECTED", quality="RED"),
                           graph_template("room_ready", quality="YELLOW"))
    attendant = auth(issuer.user_token(user_id="u-att", tenant_id=tenant, role="attendant"))
    never = await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(), metadata=attendant)
    assert (list(never.items), never.synced_at) == ([], "")
    service = auth(issuer.service_token(service="n8n-integration"))
    synced = await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(tenant_id=tenant), metadata=service)
    assert synced.created == 4

    listed = await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(), metadata=attendant)
    assert [(t.name, t.language) for t in listed.items] == [("promo", "en_US"), ("room_ready", "en_US"),
                                                            ("welcome", "en_US"), ("welcome", "pt_BR")]
    assert listed.synced_at == synced.synced_at and listed.next_cursor == ""
    promo = listed.items[0]
    assert (promo.status, promo.category, promo.quality, promo.parameter_format) == (
        "REJECTED", "MARKETING", "RED", "POSITIONAL")
    assert json.loads(promo.components_json) == [{"type": "BODY", "text": "Hello {{1}}"}] and promo.meta_id

    async def names(**filters: Any) -> list[str]:
        page = await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(**filters), metadata=attendant)
        return [f"{t.name}/{t.language}" for t in page.items]

    assert await names(status="approved") == ["room_ready/en_US", "welcome/en_US", "welcome/pt_BR"]
    assert await names(category="MARKETING") == ["promo/en_US"]
    assert await names(language="pt_BR") == ["welcome/pt_BR"]
    assert await names(quality="YELLOW") == ["room_ready/en_US"]
    assert await names(name="wel") == ["welcome/en_US", "welcome/pt_BR"]
    assert await names(name="%") == []  # a wildcard is a character, not a pattern

    pages, cursor = [], ""
    while True:
        page = await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(limit=3, cursor=cursor),
                                              metadata=attendant)
        pages.append([t.name for t in page.items])
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert pages == [["promo", "room_ready", "welcome"], ["welcome"]]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(cursor="nonsense"), metadata=attendant)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    reader = auth(issuer.api_key_token(key_id="k1", tenant_id=tenant, scopes=["messages:read"]))
    assert len((await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(), metadata=reader)).items) == 4
    other = auth(issuer.user_token(user_id="u-x", tenant_id=str(uuid.uuid4()), role="admin"))
    assert list((await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(), metadata=other)).items) == []
    for metadata, code in (
        (auth(issuer.api_key_token(key_id="k2", tenant_id=tenant, scopes=["usage:read"])), "SCOPE_MISSING"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stack.stub.ListTemplates(messaging_pb2.ListTemplatesRequest(), metadata=metadata)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert dict(denied.value.trailing_metadata() or ())["eva-error-code"] == code
    for metadata, code in ((attendant, "FORBIDDEN_ROLE"), (reader, "FORBIDDEN_ROLE"),
                           (service, "TENANT_REQUIRED")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert dict(refused.value.trailing_metadata() or ())["eva-error-code"] == code


async def test_a_refused_token_is_reported_recorded_and_answered(
        templates_stack: TemplateStack, issuer: TestTokenIssuer, owner_db: asyncpg.Connection) -> None:
    stack = templates_stack
    tenant, _ = new_tenant(stack, graph_template("welcome"))
    stack.credentials.tokens[tenant] = EXPIRED
    admin = auth(issuer.user_token(user_id="u-admin", tenant_id=tenant, role="admin"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=admin)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert REGISTRY.get_sample_value("eva_messaging_token_refused_total",
                                     {"tenant": tenant, "source": "template_sync"}) == 1
    assert dict(refused.value.trailing_metadata() or ())["eva-error-code"] == "WHATSAPP_TOKEN_INVALID"
    assert (tenant, False, 190) in stack.credentials.health
    state = await sync_row(owner_db, tenant)
    assert state is not None and state["synced_at"] is None and "WHATSAPP_TOKEN_INVALID" in state["last_error"]
    del stack.credentials.tokens[tenant]  # Meta accepts the token again: the next sync reports it healthy
    await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=admin)
    assert stack.credentials.health[-1] == (tenant, True, 0)

    unconfigured = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stack.stub.SyncTemplates(messaging_pb2.SyncTemplatesRequest(), metadata=auth(issuer.user_token(
            user_id="u2", tenant_id=unconfigured, role="admin")))
    assert dict(missing.value.trailing_metadata() or ())["eva-error-code"] == "WHATSAPP_NOT_CONFIGURED"


def account_delivery(tenant: str, waba: str, field_name: str, value: dict[str, Any]) -> Any:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": waba, "time": 1749416383, "changes": [
        {"field": field_name, "value": value}]}]}
    return make_event(WEBHOOK_RECEIVED, tenant_id=tenant, data=WebhookReceived(
        delivery_id=f"dlv-{uuid.uuid4().hex}", phone_number_id=waba, received_at=datetime.now(UTC), payload=payload))


async def test_template_webhooks_update_the_stored_template_and_an_unknown_one_syncs(
        templates_stack: TemplateStack, owner_db: asyncpg.Connection, kafka: KafkaTools) -> None:
    stack = templates_stack
    tenant, waba = new_tenant(stack, graph_template("welcome", meta_id="594425479261596"),
                              graph_template("checkout", language="es"))
    await stack.app.template_syncer.sync(tenant_id=tenant)
    processor = stack.app.processor

    rejected = await processor.process(account_delivery(tenant, waba, "message_template_status_update", {
        "event": "REJECTED", "message_template_id": 594425479261596, "message_template_name": "welcome",
        "message_template_language": "en_US", "reason": "INVALID_FORMAT"}))
    assert rejected is not None and rejected.detail == "template_updated=1"
    recategorised = await processor.process(account_delivery(tenant, waba, "template_category_update", {
        "message_template_id": "0", "message_template_name": "checkout", "message_template_language": "es",
        "previous_category": "UTILITY", "new_category": "MARKETING"}))  # unknown Meta id: found by name
    assert recategorised is not None and recategorised.detail == "template_updated=1"
    await processor.process(account_delivery(tenant, waba, "message_template_quality_update", {
        "previous_quality_score": "GREEN", "new_quality_score": "RED", "message_template_id": "594425479261596",
        "message_template_name": "welcome", "message_template_language": "en_US"}))
    repeated = await processor.process(account_delivery(tenant, waba, "message_template_quality_update", {
        "previous_quality_score": "GREEN", "new_quality_score": "RED", "message_template_id": "594425479261596",
        "message_template_name": "welcome", "message_template_language": "en_US"}))
    assert repeated is not None and repeated.detail == "template_unchanged=1"

    rows = await template_rows(owner_db, tenant)
    welcome, checkout = rows[("welcome", "en_US")], rows[("checkout", "es")]
    assert (welcome["status"], welcome["rejected_reason"], welcome["quality"]) == ("REJECTED", "INVALID_FORMAT", "RED")
    assert checkout["category"] == "MARKETING"
    approved = await processor.process(account_delivery(tenant, waba, "message_template_status_update", {
        "event": "APPROVED", "message_template_id": "594425479261596", "message_template_name": "welcome",
        "message_template_language": "en_US", "reason": "NONE"}))
    assert approved is not None and approved.detail == "template_updated=1"
    assert (await template_rows(owner_db, tenant))[("welcome", "en_US")]["rejected_reason"] is None

    def announced(records: list[Any]) -> bool:
        return len(template_events(records, tenant)) >= 6  # 2 created + 4 changes

    changes = template_events(await kafka.wait_for(stack.events_topic, announced), tenant)[2:]
    assert [(c["name"], c["status"], c["category"], c["quality"], c["rejectedReason"]) for c in changes] == [
        ("welcome", "REJECTED", "UTILITY", "GREEN", "INVALID_FORMAT"), ("checkout", "APPROVED", "MARKETING", "GREEN",
                                                                         None),
        ("welcome", "REJECTED", "UTILITY", "RED", "INVALID_FORMAT"), ("welcome", "APPROVED", "UTILITY", "RED", None)]

    # A template created at Meta after the last sync: never invented from the webhook, the tenant is synced instead.
    stack.graph.templates[waba].append(graph_template("spa_offer", status="APPROVED", meta_id="777"))
    unknown = await processor.process(account_delivery(tenant, waba, "message_template_status_update", {
        "event": "APPROVED", "message_template_id": "777", "message_template_name": "spa_offer",
        "message_template_language": "en_US", "reason": "NONE"}))
    assert unknown is not None and unknown.detail == "template_unknown=1"
    assert (await template_rows(owner_db, tenant))[("spa_offer", "en_US")]["meta_id"] == "777"


async def test_the_periodic_sync_takes_due_tenants_and_schedules_the_next(
        templates_stack: TemplateStack, owner_db: asyncpg.Connection) -> None:
    stack = templates_stack
    tenant, waba = new_tenant(stack, graph_template("welcome"))
    await stack.app.template_syncer.register(tenant_id=tenant, waba_id=waba)
    assert (await sync_row(owner_db, tenant))["synced_at"] is None  # type: ignore[index]
    assert await stack.app.template_syncer.run_once() >= 1
    state = await sync_row(owner_db, tenant)
    assert state is not None and state["synced_at"] is not None and state["next_sync_at"] > datetime.now(UTC)
    assert set(await template_rows(owner_db, tenant)) == {("welcome", "en_US")}
    async with transaction(stack.app.sessions) as session:
        assert tenant not in await due_template_syncs(session, batch=1000)


async def test_credentials_updated_registers_the_tenant_and_syncs_it(
        templates_stack: TemplateStack, owner_db: asyncpg.Connection, kafka: KafkaTools, eventually: Any) -> None:
    stack = templates_stack
    tenant, waba = new_tenant(stack, graph_template("welcome"), graph_template("checkout"))
    event = make_event("whatsapp.credentials_updated", tenant_id=tenant, data={
        "tenantId": tenant, "phoneNumberId": "106540352242922", "previousPhoneNumberId": None, "wabaId": waba,
        "displayPhoneNumber": "15550783881", "accessTokenChanged": True, "appSecretChanged": False,
        "verifyTokenChanged": False, "updatedAt": datetime.now(UTC).isoformat()})
    other = make_event("tenant.updated", tenant_id=tenant, data={"tenantId": tenant})
    await kafka.produce(stack.tenant_events_topic, other.to_bytes(), key=tenant.encode())
    await kafka.produce(stack.tenant_events_topic, event.to_bytes(), key=tenant.encode())

    async def synced() -> asyncpg.Record | None:
        state = await sync_row(owner_db, tenant)
        return state if state is not None and state["synced_at"] is not None else None

    state = await eventually(synced)
    assert state["waba_id"] == waba and state["last_error"] is None
    assert set(await template_rows(owner_db, tenant)) == {("welcome", "en_US"), ("checkout", "en_US")}


async def test_row_level_security_covers_the_template_tables(database: TestDatabase, infra: TestInfra) -> None:
    assert await rls_problems(database.owner_dsn, infra.app_user) == []
