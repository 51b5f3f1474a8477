"""Access tokens (EdDSA JWTs with a `kid`), the JWKS that publishes their public keys, opaque refresh tokens, and the
sealed successor of a spent refresh token.

The first signing key signs; every configured key is published, so a token signed with the previous key keeps
verifying until it expires (rotation without logging anyone out).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eva_common.auth import ALGORITHM, JwksSource
from eva_common.identity import ROLE_API_KEY, ROLE_SERVICE

Clock = Callable[[], float]
SERVICE_SUBJECT_PREFIX = "service:"
API_KEY_SUBJECT_PREFIX = "apikey:"
REFRESH_TOKEN_BYTES = 48
SUCCESSOR_KEY_INFO = b"eva-auth refresh-token successor v1"
SUCCESSOR_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.pop("d", None)  # belt and braces: a public JWK never carries the private part
        jwk.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        return jwk


class KeyRing:
    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = tuple(keys)

    @property
    def active(self) -> SigningKey:
        return self._keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self._keys]}

    def jwks_source(self) -> JwksSource:
        """The verifier inside auth reads its own keys: no round trip to itself."""

        async def source() -> dict[str, Any]:
            return self.jwks()

        return source


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"IssuedToken(expires_in={self.expires_in})"


class TokenIssuer:
    def __init__(
        self,
        *,
        keys: KeyRing,
        issuer: str,
        audience: str,
        access_ttl_seconds: int,
        service_ttl_seconds: int,
        api_key_ttl_seconds: int = 300,
        clock: Clock = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._access_ttl = access_ttl_seconds
        self._service_ttl = service_ttl_seconds
        self._api_key_ttl = api_key_ttl_seconds
        self._clock = clock

    def user_token(self, *, user_id: str, tenant_id: str, role: str, name: str, email: str) -> IssuedToken:
        claims = {"sub": user_id, "tid": tenant_id, "role": role, "typ": "user", "name": name, "email": email}
        return self._sign(claims, self._access_ttl)

    def service_token(self, *, service_name: str) -> IssuedToken:
        claims = {"sub": f"{SERVICE_SUBJECT_PREFIX}{service_name}", "role": ROLE_SERVICE, "typ": "service"}
        return self._sign(claims, self._service_ttl)

    def api_key_token(self, *, key_id: str, tenant_id: str, scopes: Sequence[str]) -> IssuedToken:
        """What an API key is exchanged for: a short-lived token of its tenant, carrying the key's scopes."""
        claims = {"sub": f"{API_KEY_SUBJECT_PREFIX}{key_id}", "tid": tenant_id, "role": ROLE_API_KEY,
                  "typ": "api_key", "scopes": list(scopes)}
        return self._sign(claims, self._api_key_ttl)

    def _sign(self, claims: dict[str, Any], ttl: int) -> IssuedToken:
        moment = self._clock()
        now = int(moment)
        body = {
            "iss": self._issuer, "aud": self._audience, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
            # milliseconds: compared with the subject's revocation time (tokens issued before it are refused)
            "iat_ms": int(moment * 1000),
            **claims,
        }
        key = self._keys.active
        token = jwt.encode(body, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token=token, expires_in=ttl)


class SelfServiceToken:
    """Auth's own service token (for calls to the tenant service), signed locally and renewed before expiry."""

    def __init__(self, *, issuer: TokenIssuer, service_name: str, clock: Clock = time.monotonic) -> None:
        self._issuer = issuer
        self._service_name = service_name
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0

    def __call__(self) -> str:
        if self._token is None or self._clock() >= self._renew_at:
            issued = self._issuer.service_token(service_name=self._service_name)
            self._token = issued.token
            self._renew_at = self._clock() + max(1.0, issued.expires_in - 60)
        return self._token


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_hash(token: str) -> str:
    """Only this digest is stored: a database leak does not leak usable refresh tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SuccessorPair:
    """The session a refresh handed out, kept to answer the same spent token again within the reuse grace."""

    access_token: str
    refresh_token: str
    expires_in: int

    def __repr__(self) -> str:
        return f"SuccessorPair(expires_in={self.expires_in})"


def _successor_cipher(spent_token: str) -> AESGCM:
    """A key only the holder of the spent token can derive (the database keeps its sha256, a different function)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SUCCESSOR_KEY_INFO).derive(spent_token.encode())
    return AESGCM(key)


def seal_successor(spent_token: str, pair: SuccessorPair) -> bytes:
    """The successor pair encrypted under the spent token (AES-GCM, bound to the spent token's digest)."""
    nonce = secrets.token_bytes(SUCCESSOR_NONCE_BYTES)
    plain = json.dumps({"a": pair.access_token, "r": pair.refresh_token, "e": pair.expires_in}).encode()
    return nonce + _successor_cipher(spent_token).encrypt(nonce, plain, refresh_token_hash(spent_token).encode())


def open_successor(spent_token: str, sealed: bytes) -> SuccessorPair | None:
    """The pair sealed under this spent token; None for anything else (another token, a damaged value)."""
    nonce, body = sealed[:SUCCESSOR_NONCE_BYTES], sealed[SUCCESSOR_NONCE_BYTES:]
    try:
        plain = _successor_cipher(spent_token).decrypt(nonce, body, refresh_token_hash(spent_token).encode())
        values = json.loads(plain)
        pair = SuccessorPair(access_token=values["a"], refresh_token=values["r"], expires_in=values["e"])
    except (InvalidTag, ValueError, KeyError, TypeError):
        return None
    if not isinstance(pair.access_token, str) or not isinstance(pair.refresh_token, str):
        return None
    if not isinstance(pair.expires_in, int):
        return None
    return pair
