"""Meta's wire serialization and webhook signatures.

Meta signs the exact bytes it posts: compact JSON, every non-ASCII character escaped as a lowercase
``\\uXXXX`` (emoji as a surrogate pair) and every ``/`` escaped as ``\\/``. A receiver must verify the
raw request body; re-serializing the parsed JSON does not reproduce these bytes in general.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"
SIGNATURE_PREFIX = "sha256="


def meta_body(payload: Mapping[str, Any]) -> bytes:
    """Serialize ``payload`` exactly as Meta puts it on the wire (ASCII bytes)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    # "/" only ever occurs inside JSON strings, so a plain replace is a correct escape.
    return text.replace("/", "\\/").encode("ascii")


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``: ``sha256=`` + lowercase hex HMAC-SHA256."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def legacy_signature(body: bytes, app_secret: str) -> str:
    """The legacy ``X-Hub-Signature`` value (HMAC-SHA1) that Meta historically sends alongside."""
    return "sha1=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def verify_signature(body: bytes, app_secret: str, header_value: str | None) -> bool:
    """Constant-time check of an ``X-Hub-Signature-256`` header against ``body``."""
    if not header_value or not header_value.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(header_value.encode("ascii", "replace"), signature(body, app_secret).encode())
