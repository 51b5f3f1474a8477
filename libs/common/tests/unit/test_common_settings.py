"""Settings fail fast on missing or placeholder secrets."""

from __future__ import annotations

import pytest
from eva_common.settings import ServiceSettings
from pydantic import ValidationError


@pytest.mark.parametrize("value", [None, "", "changeme", "CHANGETHIS", "secret"])
def test_placeholder_client_secret_is_refused(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    monkeypatch.delenv("EVA_SERVICE_CLIENT_SECRET", raising=False)
    if value is not None:
        monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", value)
    with pytest.raises(ValidationError, match="EVA_SERVICE_CLIENT_SECRET"):
        ServiceSettings()


def test_real_secret_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVA_SERVICE_CLIENT_SECRET", "a-real-random-value-123")
    monkeypatch.setenv("EVA_GRPC_PORT", "50999")
    settings = ServiceSettings()
    assert settings.grpc_port == 50999
    assert "a-real-random-value-123" not in repr(settings)
