"""The signature of an outbound webhook: `X-Eva-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>.<raw body>"` with the subscription's secret (the receiver recomputes it over the bytes it received, compares in
constant time, and refuses an old `t` to stop replays)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Eva-Signature"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_seconds: int = 300) -> bool:
    """A receiver's check (used by the tests and documented for n8n's Code node)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, body, timestamp))
