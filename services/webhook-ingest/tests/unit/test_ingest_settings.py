from __future__ import annotations

import pytest
from webhook_ingest_service.settings import Settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVA_HTTP_PORT", "EVA_MAX_BODY_BYTES", "EVA_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "a-real-client-secret")
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
