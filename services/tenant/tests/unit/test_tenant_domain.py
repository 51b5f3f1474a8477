import pytest
from eva_common.errors import InvalidArgument
from tenant_service.domain import (
    CredentialsInput,
    SendingCredentials,
    clean_credentials,
    clean_locale,
    clean_tenant_name,
    clean_timezone,
)

FULL = CredentialsInput(
    phone_number_id=" 1234567890 ", waba_id="998877", display_phone_number="+1 555 0100",
    access_token="EAAG-access-token-123", app_secret="0123456789abcdef", verify_token="verify-me-now",
)


def test_first_set_keeps_trimmed_values() -> None:
    clean = clean_credentials(FULL, first_set=True)
    assert clean.phone_number_id == "1234567890"
    assert clean.access_token == "EAAG-access-token-123"


@pytest.mark.parametrize("missing", ["access_token", "app_secret", "verify_token"])
def test_first_set_requires_every_secret(missing: str) -> None:
    data = CredentialsInput(**{**_fields(FULL), missing: ""})
    with pytest.raises(InvalidArgument) as raised:
        clean_credentials(data, first_set=True)
    assert raised.value.code == "MISSING_SECRET"
    assert clean_credentials(data, first_set=False).secret(missing) == ""  # an update keeps the stored one


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("phone_number_id", "+15550100", "INVALID_PHONE_NUMBER_ID"),
        ("phone_number_id", "", "INVALID_PHONE_NUMBER_ID"),
        ("waba_id", "abc", "INVALID_WABA_ID"),
        ("display_phone_number", "call me", "INVALID_DISPLAY_PHONE_NUMBER"),
        ("access_token", "short", "INVALID_SECRET"),
        ("app_secret", "has a space inside", "INVALID_SECRET"),
        ("verify_token", "x" * 257, "INVALID_SECRET"),
    ],
)
def test_invalid_fields_are_refused(field: str, value: str, code: str) -> None:
    data = CredentialsInput(**{**_fields(FULL), field: value})
    with pytest.raises(InvalidArgument) as raised:
        clean_credentials(data, first_set=False)
    assert raised.value.code == code


def test_reprs_never_show_secrets() -> None:
    assert "access-token" not in repr(FULL)
    assert "verify-me" not in repr(FULL)
    sending = SendingCredentials(tenant_id="t", phone_number_id="1", access_token="EAAG-access-token-123")
    assert "EAAG" not in repr(sending)


def test_tenant_fields() -> None:
    assert clean_tenant_name("  Hotel   Azul ") == "Hotel Azul"
    with pytest.raises(InvalidArgument):
        clean_tenant_name("   ")
    with pytest.raises(InvalidArgument):
        clean_tenant_name("x" * 201)
    assert clean_timezone("") == "UTC"
    assert clean_timezone("America/Sao_Paulo") == "America/Sao_Paulo"
    with pytest.raises(InvalidArgument):
        clean_timezone("Mars/Olympus")
    assert clean_locale("") == "en"
    assert clean_locale("pt-BR") == "pt-BR"
    with pytest.raises(InvalidArgument):
        clean_locale("not a locale")


def _fields(data: CredentialsInput) -> dict[str, str]:
    return {name: getattr(data, name) for name in CredentialsInput.__dataclass_fields__}
