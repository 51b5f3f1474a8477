"""Passwords: the policy a new password must meet, and argon2id hashing run off the event loop."""

from __future__ import annotations

import asyncio
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from eva_common.errors import InvalidArgument
from eva_common.identity import normalize_email

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def check_email(email: str) -> str:
    """The email as stored (trimmed, lowercased), or InvalidArgument."""
    normalized = normalize_email(email)
    if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.match(normalized):
        raise InvalidArgument("a valid email address is required", code="INVALID_EMAIL")
    return normalized


def check_password_policy(password: str, *, email: str) -> None:
    """At least 10 and at most 128 characters, not one repeated character, not the email address."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", code="WEAK_PASSWORD")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(f"the password may have at most {MAX_PASSWORD_LENGTH} characters", code="WEAK_PASSWORD")
    if not password.strip():
        raise InvalidArgument("the password cannot be only spaces", code="WEAK_PASSWORD")
    if len(set(password)) == 1:
        raise InvalidArgument("the password cannot repeat a single character", code="WEAK_PASSWORD")
    if password.strip().lower() == normalize_email(email):
        raise InvalidArgument("the password cannot be the email address", code="WEAK_PASSWORD")


class Passwords:
    """argon2id hashing. Verification runs in a worker thread (argon2 releases the GIL), so logins do not stall
    the event loop; a dummy hash lets an unknown email cost the same time as a wrong password."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    async def burn(self, password: str) -> None:
        """Spends one verification's time when there is no user to check against."""
        await asyncio.to_thread(self._verify, self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
