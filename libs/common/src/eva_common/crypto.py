"""Secrets at rest, shared by the services that keep them (tenant: WhatsApp credentials; n8n-integration: webhook
signing secrets): AES-GCM with a key id (so keys rotate), an HMAC digest for lookups without decryption, and the
settings that carry the keys (`EncryptionSettings`: EVA_ENCRYPTION_KEYS, EVA_ENCRYPTION_ACTIVE_KEY).

A sealed secret is `<key_id>:<base64(nonce || ciphertext+tag)>`, bound by the associated data to its service's
`scope`, its tenant and its field, so a ciphertext copied to another tenant, column or service does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr, field_validator, model_validator

from eva_common.errors import Internal
from eva_common.settings import PLACEHOLDER_SECRETS, ServiceSettings

logger = logging.getLogger("eva.crypto")

NONCE_BYTES = 12  # 96-bit random nonce, the size AES-GCM is specified for
AES_KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
TENANT_SCOPE = "eva.tenant"  # the tenant service's associated-data prefix (kept: its stored secrets use it)


class SecretUnreadable(Internal):
    """A stored secret cannot be decrypted (unknown key id, tampered data or wrong tenant/field)."""

    default_code = "SECRET_UNREADABLE"


def associated_data(*, tenant_id: str, field: str, scope: str = TENANT_SCOPE) -> bytes:
    return f"{scope}:{tenant_id}:{field}".encode()


class SecretBox:
    def __init__(self, *, keys: Mapping[str, bytes], active_key_id: str, scope: str = TENANT_SCOPE) -> None:
        if active_key_id not in keys:
            raise ValueError("the active key id must be one of the keys")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id
        self._scope = scope

    @property
    def active_key_id(self) -> str:
        return self._active

    def encrypt(self, plaintext: str, *, tenant_id: str, field: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(
            nonce, plaintext.encode(), associated_data(tenant_id=tenant_id, field=field, scope=self._scope)
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
                raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                associated_data(tenant_id=tenant_id, field=field, scope=self._scope),
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


def decode_key(name: str, value: SecretStr, *, min_bytes: int, exact: bool) -> bytes:
    """Decodes a base64 key, refusing placeholders and wrong lengths (the error never contains the key)."""
    raw_text = value.get_secret_value().strip()
    if raw_text.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is missing or a placeholder; set a real key")
    try:
        raw = base64.b64decode(raw_text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if (exact and len(raw) != min_bytes) or len(raw) < min_bytes:
        expected = f"exactly {min_bytes}" if exact else f"at least {min_bytes}"
        raise ValueError(f"{name} must decode to {expected} bytes")
    if len(set(raw)) == 1:
        raise ValueError(f"{name} is a placeholder (one repeated byte); generate a random key")
    return raw


class EncryptionSettings(ServiceSettings):
    """Settings mixin of a service that seals secrets: EVA_ENCRYPTION_KEYS (JSON object: key id -> base64 of a 32-byte
    AES key; any listed key decrypts) and EVA_ENCRYPTION_ACTIVE_KEY (the one that encrypts). Both required."""

    encryption_keys: dict[str, SecretStr]
    encryption_active_key: str

    @field_validator("encryption_keys")
    @classmethod
    def _valid_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not value:
            raise ValueError("EVA_ENCRYPTION_KEYS must list at least one key")
        for kid, key in value.items():
            if not KEY_ID_PATTERN.match(kid):
                raise ValueError(f"EVA_ENCRYPTION_KEYS: key id {kid!r} must match {KEY_ID_PATTERN.pattern}")
            decode_key(f"EVA_ENCRYPTION_KEYS[{kid}]", key, min_bytes=AES_KEY_BYTES, exact=True)
        return value

    @model_validator(mode="after")
    def _active_key_listed(self) -> Self:
        if self.encryption_active_key not in self.encryption_keys:
            raise ValueError("EVA_ENCRYPTION_ACTIVE_KEY must name a key listed in EVA_ENCRYPTION_KEYS")
        return self

    def encryption_key_bytes(self) -> dict[str, bytes]:
        return {
            kid: decode_key(kid, key, min_bytes=AES_KEY_BYTES, exact=True) for kid, key in self.encryption_keys.items()
        }

    def secret_box(self, *, scope: str = TENANT_SCOPE) -> SecretBox:
        return SecretBox(keys=self.encryption_key_bytes(), active_key_id=self.encryption_active_key, scope=scope)
