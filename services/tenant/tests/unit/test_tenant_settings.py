import base64
import json
import os
from typing import Any

import pytest
from pydantic import ValidationError
from tenant_service.settings import Settings


def _key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "postgresql+asyncpg://eva_app:pw@127.0.0.1:5432/eva_tenant",
        "service_client_secret": "tenant-client-secret-123",
        "encryption_keys": {"k1": _key()},
        "encryption_active_key": "k1",
        "lookup_hmac_key": _key(),
        "redis_url": "redis://redis:6379/0",
        "kafka_bootstrap": "kafka:9092",
        **overrides,
    }
    return Settings(**values)


def test_valid_settings_decode_keys() -> None:
    settings = _settings(encryption_keys={"k1": _key(), "k2": _key()}, encryption_active_key="k2")
    keys = settings.encryption_key_bytes()
    assert set(keys) == {"k1", "k2"} and all(len(key) == 32 for key in keys.values())
    assert len(settings.lookup_key_bytes()) == 32
    assert "encryption_keys" in repr(settings) and keys["k1"].hex() not in repr(settings)


@pytest.mark.parametrize(
    "overrides",
    [
        {"encryption_keys": {}},
        {"encryption_keys": {"k1": "changeme"}},
        {"encryption_keys": {"k1": _key(16)}},  # AES-128 is not what we configured
        {"encryption_keys": {"k1": "not-base64!!"}},
        {"encryption_keys": {"k1": base64.b64encode(b"\x00" * 32).decode()}},
        {"encryption_keys": {"bad:kid": _key()}, "encryption_active_key": "bad:kid"},
        {"encryption_active_key": "k2"},
        {"lookup_hmac_key": "changeme"},
        {"lookup_hmac_key": _key(16)},
        {"service_client_secret": "changeme"},
        {"database_url": "postgresql://eva_app:pw@127.0.0.1/eva_tenant"},
    ],
)
def test_bad_configuration_fails_fast(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _settings(**overrides)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key()
    monkeypatch.setenv("EVA_DATABASE_URL", "postgresql+asyncpg://eva_app:pw@127.0.0.1:5432/eva_tenant")
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "tenant-client-secret-123")
    monkeypatch.setenv("EVA_ENCRYPTION_KEYS", json.dumps({"2026-11": key}))
    monkeypatch.setenv("EVA_ENCRYPTION_ACTIVE_KEY", "2026-11")
    monkeypatch.setenv("EVA_LOOKUP_HMAC_KEY", _key(48))
    monkeypatch.setenv("EVA_GRPC_PORT", "60052")
    monkeypatch.setenv("EVA_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("EVA_KAFKA_BOOTSTRAP", "kafka:9092")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.grpc_port == 60052
    assert settings.encryption_key_bytes()["2026-11"] == base64.b64decode(key)
    monkeypatch.delenv("EVA_ENCRYPTION_KEYS")
    with pytest.raises(ValidationError):
        Settings()  # type: ignore[call-arg]
