"""Secrets at rest: the shared `eva_common.crypto` (AES-GCM with a key id, HMAC lookup digests), under the tenant
service's associated-data scope (`eva.tenant:<tenant>:<field>`)."""

from __future__ import annotations

from eva_common.crypto import NONCE_BYTES, LookupHasher, SecretBox, SecretUnreadable, associated_data

__all__ = ["NONCE_BYTES", "LookupHasher", "SecretBox", "SecretUnreadable", "associated_data"]
