import base64
import hashlib
import hmac
import json
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
from cryptography.hazmat.primitives import serialization
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(token: str, secret: bytes) -> str:
    """The classic key-confusion forgery: the token re-signed with HMAC, using the public key as the secret."""
    _, payload, _ = token.split(".")
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def test_key_confusion_and_unsigned_tokens_are_refused(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])
    genuine = _issuer(keys).user_token(user_id="u1", tenant_id="t1", role="admin", name="A", email="a@h.com").token
    public = ed25519_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_x = keys.jwks()["keys"][0]["x"].encode()
    _, payload, _ = genuine.split(".")
    forged = [_hs256_with_public_key(genuine, secret) for secret in (raw, pem, jwk_x)]
    forged.append(f"{_b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{payload}.")
    for token in forged:
        with pytest.raises(Unauthenticated) as raised:
            await _verifier(keys).verify(token)
        assert raised.value.code == "TOKEN_INVALID"
    assert (await _verifier(keys).verify(genuine)).subject == "u1"


def test_every_token_carries_its_issue_time_in_milliseconds(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])
    issuer = _issuer(keys, clock=1_800_000_000.4567)
    for token in (issuer.user_token(user_id="u1", tenant_id="t1", role="admin", name="A", email="a@h.com").token,
                  issuer.service_token(service_name="auth").token,
                  issuer.api_key_token(key_id="k", tenant_id="t1", scopes=["usage:read"]).token):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iat"] == 1_800_000_000 and claims["iat_ms"] == 1_800_000_000_456


class Revoked:
    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms

    async def revoked_before_ms(self, subject: str) -> int | None:
        return self.at_ms if subject == "u1" else None


async def test_tokens_issued_before_the_revocation_time_are_refused(ed25519_key: Ed25519PrivateKey) -> None:
    keys = KeyRing([SigningKey(kid="k1", private_key=ed25519_key)])
    now = time.time()
    before = _issuer(keys, clock=now - 1).user_token(user_id="u1", tenant_id="t1", role="admin", name="A",
                                                     email="a@h.com").token
    after = _issuer(keys, clock=now + 1).user_token(user_id="u1", tenant_id="t1", role="admin", name="A",
                                                    email="a@h.com").token
    verifier = TokenVerifier(jwks_source=keys.jwks_source(), issuer="eva-auth", audience="eva",
                             revocations=Revoked(int(now * 1000)))
    with pytest.raises(Unauthenticated) as raised:
        await verifier.verify(before)
    assert raised.value.code == "TOKEN_REVOKED"
    assert (await verifier.verify(after)).subject == "u1"
