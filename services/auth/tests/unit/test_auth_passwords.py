import pytest
from auth_service.passwords import Passwords, check_email, check_password_policy
from eva_common.errors import InvalidArgument


@pytest.mark.parametrize(
    "password",
    ["short1!", "aaaaaaaaaaaa", " " * 12, "x" * 129, "Owner@Hotel.com", "  owner@hotel.com "],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_password_policy(password, email="owner@hotel.com")
    assert raised.value.code == "WEAK_PASSWORD"


@pytest.mark.parametrize("password", ["correct horse", "0123456789", "Ünïcödé-pässwörd", "xy" * 64])
def test_sane_passwords_pass(password: str) -> None:
    check_password_policy(password, email="owner@hotel.com")


def test_email_is_normalised_and_checked() -> None:
    assert check_email("  Owner@Hotel.COM ") == "owner@hotel.com"
    for bad in ["", "owner", "owner@hotel", "a b@hotel.com", "@hotel.com", f"{'a' * 250}@hotel.com"]:
        with pytest.raises(InvalidArgument):
            check_email(bad)


async def test_hash_is_argon2id_and_verifies(passwords: Passwords) -> None:
    hashed = await passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert await passwords.verify(hashed, "correct horse battery")
    assert not await passwords.verify(hashed, "wrong horse battery")
    assert not await passwords.verify("not-a-hash", "correct horse battery")
    await passwords.burn("anything")  # no user: costs a verification, raises nothing


async def test_weaker_hash_needs_rehash(passwords: Passwords) -> None:
    stronger = Passwords()
    weak_hash = await passwords.hash("correct horse battery")
    assert stronger.needs_rehash(weak_hash)
    assert not stronger.needs_rehash(await stronger.hash("correct horse battery"))
