from __future__ import annotations

import pytest
from webhook_ingest_service.settings import Settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVA_HTTP_PORT", "EVA_MAX_BODY_BYTES", "EVA_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "a-real-client-secret")
    monkeypatch.setenv("EVA_DATABASE_URL", "postgresql+asyncpg://eva_app:pw@db:5432/eva_ingest")
    monkeypatch.setenv("EVA_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("EVA_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("EVA_PLATFORM_APP_SECRET", "")
    monkeypatch.setenv("EVA_PLATFORM_VERIFY_TOKEN", "verify-me")
    monkeypatch.setenv("EVA_KAFKA_ACK_TIMEOUT_SECONDS", "1.5")
    settings = Settings()
    assert settings.platform_app_secret is None
    assert settings.platform_verify_token is not None
    assert settings.platform_verify_token.get_secret_value() == "verify-me"
    assert settings.kafka_ack_timeout_seconds == 1.5
    assert settings.max_body_bytes == 3_145_728 and settings.http_port == 3002
    monkeypatch.setenv("EVA_ENVIRONMENT", "production")
    monkeypatch.setenv("EVA_PLATFORM_APP_SECRET", "changeme")
    with pytest.raises(ValueError, match="EVA_PLATFORM_APP_SECRET"):
        Settings()


@pytest.mark.parametrize("missing", ["EVA_DATABASE_URL", "EVA_REDIS_URL", "EVA_KAFKA_BOOTSTRAP"])
def test_infrastructure_addresses_have_no_defaults(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "a-real-client-secret")
    monkeypatch.setenv("EVA_DATABASE_URL", "postgresql+asyncpg://eva_app:pw@db:5432/eva_ingest")
    monkeypatch.setenv("EVA_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("EVA_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError, match=missing.removeprefix("EVA_").lower()) as raised:
        Settings()
    assert "pw@db" not in str(raised.value)
