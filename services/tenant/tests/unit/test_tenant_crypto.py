import base64
import os

import pytest
from tenant_service.crypto import LookupHasher, SecretBox, SecretUnreadable

K1 = os.urandom(32)
K2 = os.urandom(32)


def test_round_trip_binds_key_id_and_hides_plaintext() -> None:
    box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    sealed = box.encrypt("EAAG-super-secret-token", tenant_id="t1", field="access_token")
    assert sealed.startswith("k1:")
    assert "super-secret" not in sealed
    assert "super-secret" not in base64.b64decode(sealed.split(":", 1)[1]).decode("latin-1")
    assert box.decrypt(sealed, tenant_id="t1", field="access_token") == "EAAG-super-secret-token"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    first = box.encrypt("same", tenant_id="t1", field="app_secret")
    second = box.encrypt("same", tenant_id="t1", field="app_secret")
    assert first != second
    assert base64.b64decode(first[3:])[:12] != base64.b64decode(second[3:])[:12]


def test_rotation_old_ciphertext_still_decrypts_and_new_uses_active_key() -> None:
    old_box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    old = old_box.encrypt("old-secret", tenant_id="t1", field="app_secret")
    rotated = SecretBox(keys={"k1": K1, "k2": K2}, active_key_id="k2")
    assert rotated.decrypt(old, tenant_id="t1", field="app_secret") == "old-secret"
    new = rotated.encrypt("new-secret", tenant_id="t1", field="app_secret")
    assert SecretBox.key_id_of(new) == "k2"
    assert rotated.decrypt(new, tenant_id="t1", field="app_secret") == "new-secret"
    with pytest.raises(SecretUnreadable):  # the old ring does not know k2
        old_box.decrypt(new, tenant_id="t1", field="app_secret")


def test_tampered_ciphertext_fails() -> None:
    box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    sealed = box.encrypt("secret-value", tenant_id="t1", field="verify_token")
    raw = bytearray(base64.b64decode(sealed[3:]))
    raw[-1] ^= 0x01
    tampered = "k1:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SecretUnreadable):
        box.decrypt(tampered, tenant_id="t1", field="verify_token")
    with pytest.raises(SecretUnreadable):
        box.decrypt("k1:not base64!", tenant_id="t1", field="verify_token")
    with pytest.raises(SecretUnreadable):
        box.decrypt("no-key-id", tenant_id="t1", field="verify_token")


@pytest.mark.parametrize(("tenant_id", "field"), [("t2", "app_secret"), ("t1", "access_token")])
def test_wrong_associated_data_fails(tenant_id: str, field: str) -> None:
    box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    sealed = box.encrypt("secret-value", tenant_id="t1", field="app_secret")
    with pytest.raises(SecretUnreadable):
        box.decrypt(sealed, tenant_id=tenant_id, field=field)


def test_unknown_key_id_fails_and_error_names_no_secret() -> None:
    box = SecretBox(keys={"k1": K1}, active_key_id="k1")
    other = SecretBox(keys={"k9": K2}, active_key_id="k9")
    sealed = other.encrypt("secret-value", tenant_id="t1", field="app_secret")
    with pytest.raises(SecretUnreadable) as raised:
        box.decrypt(sealed, tenant_id="t1", field="app_secret")
    assert "secret-value" not in str(raised.value)
    assert raised.value.code == "SECRET_UNREADABLE"


def test_active_key_must_be_listed() -> None:
    with pytest.raises(ValueError):
        SecretBox(keys={"k1": K1}, active_key_id="k2")


def test_lookup_digest_is_deterministic_and_keyed() -> None:
    one = LookupHasher(key=K1)
    assert one.digest("verify-me-123") == one.digest("verify-me-123")
    assert one.digest("verify-me-123") != one.digest("verify-me-124")
    assert one.digest("verify-me-123") != LookupHasher(key=K2).digest("verify-me-123")
    assert "verify-me" not in one.digest("verify-me-123")
