"""EVA_WHATSAPP_API_VERSION is the one Graph API version of the service (v21.0 by default, `v<major>.<minor>`
only) and every Graph call names it; parked statuses expire after Meta's 7-day retry horizon unless configured."""

from __future__ import annotations

import httpx
import pytest
from messaging_service.media_worker import GraphMediaClient
from messaging_service.settings import Settings
from pydantic import ValidationError

BASE = {"database_url": "postgresql+asyncpg://u:p@127.0.0.1:1/db", "kafka_bootstrap": "127.0.0.1:9092",
        "service_client_secret": "a-real-client-secret", "redis_url": "redis://127.0.0.1:1/0"}


def settings(**values: object) -> Settings:
    return Settings(**BASE, **values)  # type: ignore[arg-type]


def test_the_defaults_are_v21_and_a_seven_day_retention() -> None:
    configured = settings()
    assert configured.whatsapp_api_version == "v21.0"
    assert configured.parked_status_retention_seconds == 7 * 24 * 3600


def test_the_version_and_retention_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVA_WHATSAPP_API_VERSION", "v23.0")
    monkeypatch.setenv("EVA_PARKED_STATUS_RETENTION_SECONDS", "86400")
    configured = settings()
    assert (configured.whatsapp_api_version, configured.parked_status_retention_seconds) == ("v23.0", 86400)


@pytest.mark.parametrize("version", ["21.0", "v21", "v21.0/..", "V21.0", "latest", "v21.0 ", ""])
def test_a_malformed_version_is_refused(version: str) -> None:
    with pytest.raises(ValidationError) as raised:
        settings(whatsapp_api_version=version)
    assert [error["loc"] for error in raised.value.errors()] == [("whatsapp_api_version",)]


@pytest.mark.parametrize("retention", [0, -1])
def test_the_retention_must_be_positive(retention: float) -> None:
    with pytest.raises(ValidationError):
        settings(parked_status_retention_seconds=retention)


async def test_the_media_lookup_names_the_configured_version() -> None:
    seen: list[str] = []

    def graph(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"url": "https://lookaside.test/m", "mime_type": "image/jpeg"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(graph)) as http:
        client = GraphMediaClient(http=http, graph_url="https://graph.facebook.com/", api_version="v22.0")
        info = await client.describe("1234", token="t")
    assert seen == ["https://graph.facebook.com/v22.0/1234"]
    assert (info.url, info.mime_type, info.sha256) == ("https://lookaside.test/m", "image/jpeg", None)
