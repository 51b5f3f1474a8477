"""Revocation times refuse older tokens; API-key tokens carry their tenant and scopes."""

from __future__ import annotations

import time

import pytest
from eva_common.errors import PermissionDenied, Unauthenticated
from eva_testing.tokens import TestTokenIssuer


class FakeRevocations:
    def __init__(self) -> None:
        self.times: dict[str, int] = {}

    async def revoked_before_ms(self, subject: str) -> int | None:
        return self.times.get(subject)


async def test_tokens_issued_before_the_revocation_are_refused() -> None:
    issuer, revocations = TestTokenIssuer(), FakeRevocations()
    verifier = issuer.verifier(revocations)
    now_ms = int(time.time() * 1000)
    old = issuer.user_token(user_id="u1", tenant_id="t1", iat_ms=now_ms - 5)
    assert (await verifier.verify(old)).subject == "u1"
    revocations.times["u1"] = now_ms
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(old)
    assert caught.value.code == "TOKEN_REVOKED"
    fresh = issuer.user_token(user_id="u1", tenant_id="t1", iat_ms=now_ms + 1)
    assert (await verifier.verify(fresh)).subject == "u1"
    other = issuer.user_token(user_id="u2", tenant_id="t1")
    assert (await verifier.verify(other)).subject == "u2"


async def test_api_key_token_scopes() -> None:
    issuer = TestTokenIssuer()
    principal = await issuer.verifier().verify(
        issuer.api_key_token(key_id="k1", tenant_id="t1", scopes=["messages:send"]))
    assert principal.is_api_key and principal.tenant_id == "t1"
    principal.require_scope("messages:send")
    with pytest.raises(PermissionDenied) as caught:
        principal.require_scope("users:manage")
    assert caught.value.code == "SCOPE_MISSING"
