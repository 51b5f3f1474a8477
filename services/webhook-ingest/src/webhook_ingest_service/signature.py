"""Verification of Meta's `X-Hub-Signature-256` header: HMAC-SHA256 of the raw request body with an app secret.

Pure functions, no I/O. The digest is computed over the bytes exactly as received (Meta escapes non-ASCII as
`\\uXXXX` and `/` as `\\/`; re-serialising the parsed JSON would not reproduce them) and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import string

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_LENGTH = hashlib.sha256().digest_size * 2
_HEX_DIGITS = frozenset(string.hexdigits)


def parse_signature(header: str | None) -> bytes | None:
    """The 32-byte digest a well-formed header carries, or None when it is missing or malformed.

    Well-formed means `sha256=` followed by exactly 64 hex digits (Meta sends lowercase; the hex value, not its
    case, is what is compared).
    """
    if header is None:
        return None
    value = header.strip()
    if not value.startswith(_PREFIX):
        return None
    digest_hex = value[len(_PREFIX):]
    if len(digest_hex) != _HEX_LENGTH or not _HEX_DIGITS.issuperset(digest_hex):
        return None
    return bytes.fromhex(digest_hex)


def compute_digest(body: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def signature_matches(body: bytes, expected: bytes, secret: str) -> bool:
    """Whether `secret` signed `body` to the digest `expected` (constant-time comparison)."""
    if not secret:
        return False
    return hmac.compare_digest(compute_digest(body, secret), expected)


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether the header is a well-formed signature of the raw body made with `secret`."""
    expected = parse_signature(header)
    return expected is not None and signature_matches(body, expected, secret)


class SignatureCheck:
    """Checks one delivery against several candidate secrets, computing the HMAC once per distinct secret."""

    def __init__(self, body: bytes, header: str | None) -> None:
        self._body = body
        self._expected = parse_signature(header)
        self._results: dict[str, bool] = {}

    @property
    def well_formed(self) -> bool:
        return self._expected is not None

    def verified_with(self, secret: str) -> bool:
        if self._expected is None or not secret:
            return False
        result = self._results.get(secret)
        if result is None:
            result = signature_matches(self._body, self._expected, secret)
            self._results[secret] = result
        return result
