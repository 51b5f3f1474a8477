"""Account-level changes (no phone number id) routed by their entry's WABA id through the tenant service's
ResolveWabaId, over real HTTP and real Kafka; the answer is cached like phone-number look-ups."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eva_events.envelope import EventEnvelope

pytestmark = pytest.mark.integration

Signer = Callable[[bytes, str], str]


def template_update(waba_id: str) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": waba_id, "time": 1749416383,
        "changes": [{"field": "message_template_status_update", "value": {
            "event": "APPROVED", "message_template_id": 594425479261596, "message_template_name": "welcome",
            "message_template_language": "en_US", "reason": None}}]}]}, separators=(",", ":")).encode()


async def test_account_level_delivery_is_published_for_the_owner_of_its_waba(
    client: httpx.AsyncClient, ingest_app: Any, read_topic: Any, tenant_servicer: Any, sign: Signer
) -> None:
    waba_id = f"waba-{uuid.uuid4().hex[:12]}"
    tenant_servicer.add_waba(waba_id, tenant_id="t-waba", app_secret="waba-app-secret")
    body = template_update(waba_id)
    calls_before = tenant_servicer.waba_calls

    first = await client.post("/webhooks/whatsapp", content=body,
                              headers={"Content-Type": "application/json",
                                       "X-Hub-Signature-256": sign(body, "waba-app-secret")})
    second = await client.post("/webhooks/whatsapp", content=body,
                               headers={"Content-Type": "application/json",
                                        "X-Hub-Signature-256": sign(body, "waba-app-secret")})

    assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
    assert tenant_servicer.waba_calls == calls_before + 1  # the second one came from the cache
    delivery_id = first.json()["deliveryIds"][0]
    records = [r for r in await read_topic(ingest_app.topic)
               if dict(r.headers).get("delivery-id", b"").decode() == delivery_id]
    assert len(records) == 1
    event = EventEnvelope.from_bytes(records[0].value)
    assert records[0].key == waba_id.encode()
    assert (event.tenant_id, event.data["phoneNumberId"]) == ("t-waba", waba_id)
    assert event.data["payload"] == json.loads(body)


async def test_account_level_delivery_of_an_unclaimed_waba_is_kept_aside(
    client: httpx.AsyncClient, platform_app_secret: str, sign: Signer
) -> None:
    body = template_update(f"waba-{uuid.uuid4().hex[:12]}")
    forged = await client.post("/webhooks/whatsapp", content=body,
                               headers={"Content-Type": "application/json",
                                        "X-Hub-Signature-256": sign(body, "not-the-platform-secret")})
    assert forged.status_code == 401
    response = await client.post("/webhooks/whatsapp", content=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Hub-Signature-256": sign(body, platform_app_secret)})
    assert response.status_code == 200, response.text
    assert response.json()["deliveryIds"] == [] and len(response.json()["unroutedIds"]) == 1
