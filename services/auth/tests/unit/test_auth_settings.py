import json
from typing import Any

import pytest
from auth_service.main import key_ring
from auth_service.settings import Settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError


def _pem(key: Any = None) -> str:
    key = key or Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "postgresql+asyncpg://eva_app:pw@127.0.0.1:5432/eva_auth",
        "service_client_secret": "auth-client-secret-123",
        "redis_url": "redis://127.0.0.1:6379/0",
        "kafka_bootstrap": "127.0.0.1:9092",
        "jwt_signing_keys": [{"kid": "k1", "private_key_pem": _pem()}],
        **overrides,
    }
    return Settings(**values)


def test_defaults_and_key_ring() -> None:
    settings = _settings(jwt_signing_keys=[{"kid": "new", "private_key_pem": _pem()},
                                           {"kid": "old", "private_key_pem": _pem()}])
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 30 * 86_400
    assert settings.refresh_reuse_grace_seconds == 30
    assert settings.service_token_ttl_seconds == 300
    assert (settings.jwt_issuer, settings.jwt_audience) == ("eva-auth", "eva")
    ring = key_ring(settings)
    assert ring.active.kid == "new"
    assert [key["kid"] for key in ring.jwks()["keys"]] == ["new", "old"]
    assert "PRIVATE KEY" not in repr(settings)


@pytest.mark.parametrize(
    "overrides",
    [
        {"jwt_signing_keys": []},
        {"jwt_signing_keys": [{"kid": "k1", "private_key_pem": "changeme"}]},
        {"jwt_signing_keys": [{"kid": "k1", "private_key_pem": _pem(ec.generate_private_key(ec.SECP256R1()))}]},
        {"jwt_signing_keys": [{"kid": "k1", "private_key_pem": _pem()}, {"kid": "k1", "private_key_pem": _pem()}]},
        {"jwt_signing_keys": [{"kid": "bad kid", "private_key_pem": _pem()}]},
        {"service_clients": {"ingest": "changeme"}},
        {"service_clients": {"ingest": ""}},
        {"environment": "production", "service_clients": {"ingest": "short-secret"}},
        {"access_token_ttl_seconds": 5},
        {"refresh_reuse_grace_seconds": -1},
        {"refresh_reuse_grace_seconds": 301},
    ],
)
def test_bad_configuration_fails_fast(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _settings(**overrides)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVA_DATABASE_URL", "postgresql+asyncpg://eva_app:pw@127.0.0.1:5432/eva_auth")
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "auth-client-secret-123")
    monkeypatch.setenv("EVA_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("EVA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    monkeypatch.setenv("EVA_JWT_SIGNING_KEYS", json.dumps([{"kid": "2026-11", "private_key_pem": _pem()}]))
    monkeypatch.setenv("EVA_SERVICE_CLIENTS", json.dumps({"webhook-ingest": "a-long-random-client-secret"}))
    monkeypatch.setenv("EVA_ACCESS_TOKEN_TTL_SECONDS", "600")
    monkeypatch.setenv("EVA_REFRESH_REUSE_GRACE_SECONDS", "0")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.access_token_ttl_seconds == 600
    assert settings.refresh_reuse_grace_seconds == 0
    assert settings.jwt_signing_keys[0].kid == "2026-11"
    assert settings.service_clients["webhook-ingest"].get_secret_value() == "a-long-random-client-secret"
