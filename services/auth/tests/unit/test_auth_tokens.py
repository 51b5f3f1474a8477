import time

import jwt
import pytest
from auth_service.tokens import (
    KeyRing,
    SelfServiceToken,
    SigningKey,
    TokenIssuer,
    new_refresh_token,
    refresh_token_hash,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva_common.auth import TokenVerifier
from eva_common.errors import Unauthenticated


def _issuer(keys: KeyRing, *, clock: float | None = None) -> TokenIssuer:
    return TokenIssuer(
        keys=keys, issuer="eva-auth", audience="eva", access_ttl_seconds=900, service_ttl_seconds=300,
        clock=(lambda: clock) if clock is not None else time.time,
    )


def _verifier(keys: KeyRing) -> TokenVerifier:
    return TokenVerifier(jwks_source=keys.jwks_source(), issuer="eva-auth", audience="eva")


async def test_user_token_claims_and_kid(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k-2026", private_key=ed25519_key)])
    issued = _issuer(keys).user_token(user_id="u1", tenant_id="t1", role="admin", name="Ana", email="ana@h.com")
    assert issued.expires_in == 900
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "EdDSA", "kid": "k-2026", "typ": "JWT"}
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert {k: claims[k] for k in ("iss", "aud", "sub", "tid", "role", "typ")} == {
        "iss": "eva-auth", "aud": "eva", "sub": "u1", "tid": "t1", "role": "admin", "typ": "user"}
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    principal = await _verifier(keys).verify(issued.token)
    assert (principal.subject, principal.tenant_id, principal.role, principal.kind) == ("u1", "t1", "admin", "user")


async def test_service_token_has_no_tenant(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])
    issued = _issuer(keys).service_token(service_name="webhook-ingest")
    assert issued.expires_in == 300
    principal = await _verifier(keys).verify(issued.token)
    assert principal.is_service and principal.subject == "service:webhook-ingest"
    assert principal.tenant_id is None and principal.role == "service"


async def test_previous_key_still_verifies_after_rotation() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = KeyRing([SigningKey(kid="old", private_key=old)])
    token = _issuer(before).user_token(user_id="u1", tenant_id="t1", role="admin", name="A", email="a@h.com").token
    after = KeyRing([SigningKey(kid="new", private_key=new), SigningKey(kid="old", private_key=old)])
    assert [key["kid"] for key in after.jwks()["keys"]] == ["new", "old"]
    assert (await _verifier(after).verify(token)).subject == "u1"
    fresh = _issuer(after).user_token(user_id="u2", tenant_id="t1", role="admin", name="B", email="b@h.com").token
    assert jwt.get_unverified_header(fresh)["kid"] == "new"
    with pytest.raises(Unauthenticated):  # once the old key is dropped its tokens stop verifying
        await _verifier(KeyRing([SigningKey(kid="new", private_key=new)])).verify(token)


def test_jwks_publishes_public_keys_only(ed25519_key: Ed25519PrivateKey) -> None:
    jwks = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)]).jwks()
    (entry,) = jwks["keys"]
    assert entry["kty"] == "OKP" and entry["crv"] == "Ed25519" and entry["alg"] == "EdDSA" and entry["use"] == "sig"
    assert "d" not in entry and entry["kid"] == "k1"
    assert "k1" in repr(SigningKey(kid="k1", private_key=ed25519_key))


async def test_expired_token_is_refused(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])
    token = _issuer(keys, clock=time.time() - 3600).user_token(
        user_id="u1", tenant_id="t1", role="admin", name="A", email="a@h.com").token
    with pytest.raises(Unauthenticated) as raised:
        await _verifier(keys).verify(token)
    assert raised.value.code == "TOKEN_EXPIRED"


def test_self_service_token_is_cached_until_renewal(ed25519_key: Ed25519PrivateKey) -> None:
    now = [1000.0]
    provider = SelfServiceToken(
        issuer=_issuer(KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])), service_name="auth",
        clock=lambda: now[0],
    )
    first = provider()
    assert provider() == first
    assert jwt.decode(first, options={"verify_signature": False})["sub"] == "service:auth"
    now[0] += 239  # renewed a minute before the 300 s expiry
    assert provider() == first
    now[0] += 2
    assert provider() != first


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    one, two = new_refresh_token(), new_refresh_token()
    assert one != two and len(one) >= 64
    assert refresh_token_hash(one) == refresh_token_hash(one)
    assert len(refresh_token_hash(one)) == 64 and one not in refresh_token_hash(one)
