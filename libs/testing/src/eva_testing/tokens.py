"""A test token issuer: signs EdDSA tokens the way auth does and serves them as a JWKS source,
so a service's own tests can verify callers without running auth."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva_common.auth import RevocationCheck, TokenVerifier


class TestTokenIssuer:
    __test__ = False

    def __init__(self, *, issuer: str = "eva-auth", audience: str = "eva", kid: str | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = kid or uuid.uuid4().hex[:8]
        self._key = Ed25519PrivateKey.generate()

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": [jwk]}

    def verifier(self, revocations: RevocationCheck | None = None) -> TokenVerifier:
        async def source() -> dict[str, Any]:
            return self.jwks()

        return TokenVerifier(jwks_source=source, issuer=self.issuer, audience=self.audience, revocations=revocations)

    def user_token(
        self, *, user_id: str, tenant_id: str, role: str = "admin", ttl: int = 900, **extra: Any
    ) -> str:
        return self._sign({"sub": user_id, "tid": tenant_id, "role": role, "typ": "user", **extra}, ttl)

    def api_key_token(self, *, key_id: str, tenant_id: str, scopes: list[str], ttl: int = 300) -> str:
        return self._sign({"sub": f"apikey:{key_id}", "tid": tenant_id, "role": "api_key", "typ": "api_key",
                           "scopes": scopes}, ttl)

    def service_token(self, *, service: str = "test", ttl: int = 300) -> str:
        return self._sign({"sub": f"service:{service}", "role": "service", "typ": "service"}, ttl)

    def _sign(self, claims: dict[str, Any], ttl: int) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.audience, "iat": now, "iat_ms": int(time.time() * 1000),
                "exp": now + ttl, "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(body, self._key, algorithm="EdDSA", headers={"kid": self.kid})
