"""API keys' shape and input rules (no I/O)."""

from datetime import UTC, datetime, timedelta

import pytest
from eva_common.errors import InvalidArgument
from eva_common.identity import API_KEY_SCOPES as SCOPES
from tenant_service.api_keys.domain import (
    ApiKeyInput,
    ApiKeyView,
    CreatedApiKey,
    clean_api_key_input,
    generate_key,
    well_formed,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def test_generated_keys_have_the_documented_shape_and_are_unique() -> None:
    keys = [generate_key() for _ in range(200)]
    for prefix, key in keys:
        assert len(prefix) == 8 and prefix.isalnum() and prefix == prefix.lower()
        assert key.startswith(f"eva_{prefix}_") and len(key) == 4 + 8 + 1 + 43
        assert well_formed(key)
    assert len({key for _, key in keys}) == 200


@pytest.mark.parametrize("key", ["", "eva_", "eva_abcdefg_" + "x" * 43, "eva_ABCDEFGH_" + "x" * 43,
                                 "eva_abcdefgh_" + "x" * 10, "eva_abcdefgh_" + "x" * 43 + "!",
                                 "xyz_abcdefgh_" + "x" * 43, "eva_abcdefgh_" + "x" * 400])
def test_malformed_keys(key: str) -> None:
    assert not well_formed(key)


def test_input_is_trimmed_and_scopes_deduplicated_in_a_stable_order() -> None:
    clean = clean_api_key_input(
        ApiKeyInput(name="  n8n   prod ", scopes=("usage:read", "messages:send", " usage:read ")), now=NOW)
    assert clean.name == "n8n prod"
    assert clean.scopes == ("messages:send", "usage:read")
    assert clean.expires_at is None
    every = clean_api_key_input(ApiKeyInput(name="all", scopes=tuple(reversed(SCOPES))), now=NOW)
    assert every.scopes == SCOPES


@pytest.mark.parametrize(("data", "code"), [
    (ApiKeyInput(name="", scopes=("usage:read",)), "INVALID_API_KEY_NAME"),
    (ApiKeyInput(name="   ", scopes=("usage:read",)), "INVALID_API_KEY_NAME"),
    (ApiKeyInput(name="x" * 101, scopes=("usage:read",)), "INVALID_API_KEY_NAME"),
    (ApiKeyInput(name="k", scopes=()), "SCOPES_REQUIRED"),
    (ApiKeyInput(name="k", scopes=(" ",)), "SCOPES_REQUIRED"),
    (ApiKeyInput(name="k", scopes=("usage:write",)), "INVALID_SCOPE"),
    (ApiKeyInput(name="k", scopes=("usage:read",), expires_at=NOW.isoformat()), "INVALID_EXPIRES_AT"),
    (ApiKeyInput(name="k", scopes=("usage:read",), expires_at="2020-01-01T00:00:00Z"), "INVALID_EXPIRES_AT"),
    (ApiKeyInput(name="k", scopes=("usage:read",), expires_at="soon"), "INVALID_TIME"),
])
def test_invalid_input(data: ApiKeyInput, code: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        clean_api_key_input(data, now=NOW)
    assert raised.value.code == code


def test_expiry_in_the_future_is_kept_and_a_missing_offset_means_utc() -> None:
    later = NOW + timedelta(days=30)
    assert clean_api_key_input(ApiKeyInput(name="k", scopes=("usage:read",), expires_at=later.isoformat()),
                               now=NOW).expires_at == later
    naive = clean_api_key_input(ApiKeyInput(name="k", scopes=("usage:read",), expires_at="2026-02-01T00:00:00"),
                                now=NOW)
    assert naive.expires_at == datetime(2026, 2, 1, tzinfo=UTC)


def test_the_created_key_never_shows_in_its_repr() -> None:
    prefix, key = generate_key()
    view = ApiKeyView(id="k1", tenant_id="t1", name="n8n", prefix=prefix, scopes=("usage:read",), created_by="u1",
                      created_at=NOW)
    created = CreatedApiKey(api_key=view, key=key)
    assert key not in repr(created) and key not in str(created)
    assert prefix in repr(created)
