"""Events leave through the outbox to Kafka (the stack's unique topic), keyed by tenant, without secrets."""

import asyncio
import json
import random
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from eva.tenant.v1 import tenant_pb2
from eva_testing.infra import test_infra

pytestmark = pytest.mark.integration

SECRETS = {"access_token": "EAAG-event-check-access-token", "app_secret": "event-check-app-secret-77",
           "verify_token": "event-check-verify-token"}


async def collect(topic: str, tenant_id: str, wanted: set[str], timeout: float = 60.0) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=test_infra().kafka_bootstrap,
                                group_id=f"test-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout):
            while {json.loads(value)["type"] for _, value in found} != wanted:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found += [(r.key, r.value) for r in records if r.key == tenant_id.encode()]
    finally:
        await consumer.stop()
    return found


async def test_tenant_and_credentials_events_reach_kafka_without_secrets(stack) -> None:
    admin = await stack.register()
    phone = str(random.randrange(10**14, 10**15))
    await stack.tenant_stub.PutWhatsAppCredentials(
        tenant_pb2.PutWhatsAppCredentialsRequest(phone_number_id=phone, waba_id="4455", **SECRETS),
        metadata=stack.bearer(admin.access_token))
    records = await collect(stack.events_topic, admin.tenant.id, {"tenant.created", "whatsapp.credentials_updated"})
    events = {json.loads(value)["type"]: json.loads(value) for _, value in records}
    created = events["tenant.created"]
    assert created["tenantId"] == admin.tenant.id and created["data"]["slug"] == admin.tenant.slug
    updated = events["whatsapp.credentials_updated"]
    assert updated["data"]["phoneNumberId"] == phone and updated["data"]["previousPhoneNumberId"] is None
    assert updated["data"]["accessTokenChanged"] and updated["data"]["verifyTokenChanged"]
    for _, value in records:
        for secret in SECRETS.values():
            assert secret.encode() not in value
    rows = await stack.sql(stack.tenant_db, "SELECT count(*) AS pending FROM outbox WHERE sent_at IS NULL "
                                            "AND tenant_id = $1", admin.tenant.id)
    assert rows[0]["pending"] == 0


async def test_readiness_reports_postgres_redis_kafka_and_workers(stack) -> None:
    transport = httpx.ASGITransport(app=stack.tenant.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant") as client:
        for _ in range(100):  # the producer connects in the background: poll for up to ~20 s
            ready = await client.get("/readyz")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.2)
        alive = await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok", "workers": "ok"}
    assert alive.status_code == 200 and "eva_grpc_requests_total" in metrics.text


async def test_administration_and_key_events_reach_kafka_without_the_key(harness) -> None:
    tenant = await harness.new_tenant("Evented Hotel")
    admin = harness.user(tenant.id, "admin", user_id="admin-3")
    created = await harness.stub.CreateApiKey(tenant_pb2.CreateApiKeyRequest(name="k", scopes=["messages:read"]),
                                              metadata=admin)
    await harness.stub.RevokeApiKey(tenant_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=admin)
    await harness.stub.UpdateTenant(tenant_pb2.UpdateTenantRequest(timezone="Europe/Madrid"), metadata=admin)
    await harness.stub.SetTenantStatus(tenant_pb2.SetTenantStatusRequest(tenant_id=tenant.id, status="suspended"),
                                       metadata=harness.super_admin(user_id="root-2"))
    records = await collect(harness.settings.tenant_events_topic, tenant.id,
                            {"tenant.created", "api_key.created", "api_key.revoked", "tenant.updated",
                             "tenant.status_changed"})
    events = {json.loads(value)["type"]: json.loads(value)["data"] for _, value in records}
    assert events["api_key.created"]["keyId"] == created.api_key.id
    assert events["api_key.created"]["prefix"] == created.api_key.prefix
    assert events["tenant.updated"] == {**events["tenant.updated"], "timezone": "Europe/Madrid",
                                        "changed": ["timezone"]}
    assert (events["tenant.status_changed"]["status"], events["tenant.status_changed"]["previousStatus"],
            events["tenant.status_changed"]["changedBy"]) == ("suspended", "active", "root-2")
    audits = await collect(harness.settings.audit_events_topic, tenant.id, {"audit.recorded"})
    for _, value in [*records, *audits]:
        assert created.key.encode() not in value
