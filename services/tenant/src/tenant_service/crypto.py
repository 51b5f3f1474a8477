"""Secrets at rest: AES-GCM with a key id (so keys rotate), and an HMAC digest for lookups without decryption.

A sealed secret is `<key_id>:<base64(nonce || ciphertext+tag)>`, bound to its tenant and field by the associated
data, so a ciphertext copied to another tenant or column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eva_common.errors import Internal

logger = logging.getLogger("tenant.crypto")

NONCE_BYTES = 12  # 96-bit random nonce, the size AES-GCM is specified for


class SecretUnreadable(Internal):
    """A stored secret cannot be decrypted (unknown key id, tampered data or wrong tenant/field)."""

    default_code = "SECRET_UNREADABLE"


def associated_data(*, tenant_id: str, field: str) -> bytes:
    return f"eva.tenant:{tenant_id}:{field}".encode()


class SecretBox:
    def __init__(self, *, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("the active key id must be one of the keys")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id

    @property
    def active_key_id(self) -> str:
        return self._active

    def encrypt(self, plaintext: str, *, tenant_id: str, field: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(
            nonce, plaintext.encode(), associated_data(tenant_id=tenant_id, field=field)
        )
        return f"{self._active}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, tenant_id: str, field: str) -> str:
        kid, sep, body = token.partition(":")
        cipher = self._ciphers.get(kid)
        if not sep or cipher is None:
            logger.error("no key to open a stored secret", extra={"tenant_id": tenant_id, "field": field, "kid": kid})
            raise SecretUnreadable(f"no key {kid!r} to decrypt the stored {field}")
        try:
            raw = base64.b64decode(body, validate=True)
            plaintext = cipher.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(tenant_id=tenant_id, field=field)
            )
        except (InvalidTag, binascii.Error, ValueError):
            logger.error("a stored secret does not open", extra={"tenant_id": tenant_id, "field": field, "kid": kid})
            raise SecretUnreadable(f"the stored {field} does not decrypt") from None
        return plaintext.decode()

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.partition(":")[0]


class LookupHasher:
    """HMAC-SHA256 under a dedicated key: finds a row by a secret without storing or decrypting the secret."""

    def __init__(self, *, key: bytes) -> None:
        self._key = key

    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
