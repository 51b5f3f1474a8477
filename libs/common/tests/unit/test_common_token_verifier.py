"""TokenVerifier: pinned EdDSA, required claims, expiry, JWKS refresh on an unknown key id."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

import jwt
import pytest
from eva_common.auth import TokenVerifier
from eva_common.errors import PermissionDenied, Unauthenticated
from eva_testing.tokens import TestTokenIssuer


async def test_user_token_becomes_a_principal() -> None:
    issuer = TestTokenIssuer()
    token = issuer.user_token(user_id="u1", tenant_id="t1", role="attendant")
    principal = await issuer.verifier().verify(token)
    assert (principal.subject, principal.tenant_id, principal.role, principal.kind) == ("u1", "t1", "attendant", "user")
    assert principal.tenant_scope("someone-else") == "t1"  # a user never acts on another tenant
    with pytest.raises(PermissionDenied):
        principal.require_service()


async def test_service_token_must_name_its_tenant() -> None:
    issuer = TestTokenIssuer()
    principal = await issuer.verifier().verify(issuer.service_token(service="messaging"))
    assert principal.is_service and principal.tenant_id is None
    assert principal.tenant_scope("t9") == "t9"
    with pytest.raises(PermissionDenied):
        principal.tenant_scope("")


async def test_expired_token_is_refused_with_its_own_code() -> None:
    issuer = TestTokenIssuer()
    with pytest.raises(Unauthenticated) as caught:
        await issuer.verifier().verify(issuer.user_token(user_id="u", tenant_id="t", ttl=-60))
    assert caught.value.code == "TOKEN_EXPIRED"


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
async def test_hmac_and_none_are_refused(algorithm: str) -> None:
    issuer = TestTokenIssuer()
    now = int(time.time())
    claims = {"iss": "eva-auth", "aud": "eva", "sub": "u", "tid": "t", "role": "admin", "typ": "user",
              "iat": now, "exp": now + 60, "jti": "j"}
    key = "k" * 32 if algorithm == "HS256" else None
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": issuer.kid})
    with pytest.raises(Unauthenticated) as caught:
        await issuer.verifier().verify(token)
    assert caught.value.code == "TOKEN_INVALID"


async def test_foreign_key_wrong_audience_and_issuer_are_refused() -> None:
    trusted, foreign = TestTokenIssuer(), TestTokenIssuer(kid="same-kid")
    verifier = trusted.verifier()
    for token in (
        foreign.user_token(user_id="u", tenant_id="t"),
        TestTokenIssuer(kid=trusted.kid).user_token(user_id="u", tenant_id="t"),  # same kid, other key
        TestTokenIssuer(audience="other").user_token(user_id="u", tenant_id="t"),
    ):
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)


async def test_unknown_kid_refetches_the_jwks_so_keys_can_rotate() -> None:
    old, new = TestTokenIssuer(kid="old"), TestTokenIssuer(kid="new")
    published: dict[str, Any] = old.jwks()
    fetches = 0

    async def source() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        return published

    verifier = TokenVerifier(jwks_source=source, issuer="eva-auth", audience="eva", min_refetch_seconds=0)
    await verifier.verify(old.user_token(user_id="u", tenant_id="t"))
    published = {"keys": old.jwks()["keys"] + new.jwks()["keys"]}
    principal = await verifier.verify(new.user_token(user_id="u2", tenant_id="t"))
    assert principal.subject == "u2" and fetches == 2
    assert (await verifier.verify(old.user_token(user_id="u3", tenant_id="t"))).subject == "u3"


async def test_garbage_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        await TestTokenIssuer().verifier().verify("not.a.jwt" + uuid.uuid4().hex)


class _Revocations:
    def __init__(self) -> None:
        self.before: dict[str, int] = {}

    async def revoked_before_ms(self, subject: str) -> int | None:
        return self.before.get(subject)

    async def revoked_before_many(self, subjects: Collection[str]) -> dict[str, int]:
        return {s: self.before[s] for s in subjects if s in self.before}


async def test_a_verified_token_is_remembered_but_its_revocation_is_checked_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = TestTokenIssuer()
    revocations = _Revocations()
    verifier = issuer.verifier(revocations)
    token = issuer.user_token(user_id="u-cache", tenant_id="t")
    decoded = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert first == second and decoded == 1  # the signature was checked once
    revocations.before["u-cache"] = int(time.time() * 1000) + 1000  # the user's sessions end now
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.code == "TOKEN_REVOKED"


async def test_a_remembered_token_expires_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = TestTokenIssuer()
    verifier = issuer.verifier()
    token = issuer.user_token(user_id="u", tenant_id="t", ttl=60)
    await verifier.verify(token)
    later = time.time() + 60 + 6  # past the expiry and the 5 s leeway
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.code == "TOKEN_EXPIRED"


async def test_a_remembered_token_whose_key_was_withdrawn_is_verified_again() -> None:
    old, new = TestTokenIssuer(kid="old"), TestTokenIssuer(kid="new")
    published: dict[str, Any] = old.jwks()

    async def source() -> dict[str, Any]:
        return published

    verifier = TokenVerifier(jwks_source=source, issuer="eva-auth", audience="eva", min_refetch_seconds=0)
    token = old.user_token(user_id="u", tenant_id="t")
    await verifier.verify(token)
    published = new.jwks()  # "old" withdrawn (rotated out after a leak)
    await verifier.verify(new.user_token(user_id="u2", tenant_id="t"))  # the verifier learns the new key set
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.code == "TOKEN_INVALID"


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn_even_without_another_token() -> None:
    old, new = TestTokenIssuer(kid="old"), TestTokenIssuer(kid="new")
    published: dict[str, Any] = old.jwks()

    async def source() -> dict[str, Any]:
        return published

    verifier = TokenVerifier(jwks_source=source, issuer="eva-auth", audience="eva", refresh_interval_seconds=0,
                             min_refetch_seconds=0)
    token = old.user_token(user_id="u", tenant_id="t")
    await verifier.verify(token)
    published = new.jwks()  # the same token again: the keys are refreshed (interval 0) and "old" is gone
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.code == "TOKEN_INVALID"
