"""API keys: their shape (`eva_<8 lowercase alnum>_<secret>`), scopes, and what the use cases take and return."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from eva_common.errors import InvalidArgument
from eva_common.identity import API_KEY_SCOPES
from eva_common.timefmt import parse_rfc3339

MAX_NAME_LENGTH = 100
PREFIX_LENGTH = 8
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32
MAX_ACTIVE_KEYS = 50
KEY_PATTERN = re.compile(r"^eva_([a-z0-9]{8})_[A-Za-z0-9_-]{32,128}$")
MAX_KEY_LENGTH = 160


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """The new key's view and the key itself (returned once, never stored or logged)."""

    api_key: ApiKeyView
    key: str

    def __repr__(self) -> str:
        return f"CreatedApiKey(api_key={self.api_key!r})"


@dataclass(frozen=True, slots=True)
class ApiKeyInput:
    name: str
    scopes: tuple[str, ...]
    expires_at: str = ""


@dataclass(frozen=True, slots=True)
class CleanApiKeyInput:
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyVerification:
    valid: bool
    key_id: str = ""
    tenant_id: str = ""
    scopes: tuple[str, ...] = ()
    tenant_status: str = ""


INVALID_KEY = KeyVerification(valid=False)


def clean_api_key_input(data: ApiKeyInput, *, now: datetime) -> CleanApiKeyInput:
    name = " ".join(data.name.split())
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidArgument(f"the key's name must be 1 to {MAX_NAME_LENGTH} characters", code="INVALID_API_KEY_NAME")
    requested = {scope.strip() for scope in data.scopes if scope.strip()}
    if not requested:
        raise InvalidArgument("an API key needs at least one scope", code="SCOPES_REQUIRED")
    unknown = requested.difference(API_KEY_SCOPES)
    if unknown:
        raise InvalidArgument(
            f"unknown scopes {sorted(unknown)}; allowed: {', '.join(API_KEY_SCOPES)}", code="INVALID_SCOPE"
        )
    expires_at = parse_rfc3339(data.expires_at, field="expires_at", code="INVALID_TIME", naive_utc=True)
    if expires_at is not None and expires_at <= now:
        raise InvalidArgument("expires_at must be in the future", code="INVALID_EXPIRES_AT")
    return CleanApiKeyInput(name=name, scopes=tuple(scope for scope in API_KEY_SCOPES if scope in requested),
                            expires_at=expires_at)


def generate_key() -> tuple[str, str]:
    """(prefix, key): `eva_<prefix>_<secrets.token_urlsafe(32)>`."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, f"eva_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def well_formed(key: str) -> bool:
    """Whether a presented key has our shape (anything else is refused before any lookup)."""
    return len(key) <= MAX_KEY_LENGTH and KEY_PATTERN.match(key) is not None
