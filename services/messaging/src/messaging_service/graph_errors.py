"""Meta's Graph API errors (reference §5.3, §5.4): the error body parsed once, and what the sender does with each
code — retry with backoff, fail at once, or mark the tenant's WhatsApp connection unhealthy."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Retried with exponential backoff and jitter (reference §5.4): temporary errors, throughput and pair-rate limits.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131056, 131057, 133004})
THROUGHPUT_CODES = frozenset({130429})  # the number's limit: every replica pauses the number
PAIR_RATE_CODE = 131056  # this guest only: retry after 4^x seconds (reference §7)
TOKEN_CODES = frozenset({0, 190})  # the tenant's access token is expired or invalid
WINDOW_CODE = 131047  # re-engagement: only a template can reopen the window
MARKETING_LIMIT_CODE = 131049  # Meta's per-user marketing limit: never retried at once (24 h)
BSUID_UNSUPPORTED_CODE = 131062

HINTS = {
    WINDOW_CODE: "More than 24 hours have passed since the guest last wrote: only a template can reopen the window.",
    MARKETING_LIMIT_CODE: "Meta limits how many marketing messages a guest receives; do not resend before 24 hours.",
    190: "The WhatsApp access token expired or was revoked: renew it in the WhatsApp settings.",
    BSUID_UNSUPPORTED_CODE: "This message type cannot be sent to a guest known only by a business-scoped user id.",
}


class Verdict(enum.StrEnum):
    RETRY = "retry"
    FAIL = "fail"


@dataclass(eq=False)
class GraphError(Exception):
    """An error answer of the Graph API (or a transport failure, with `code` None)."""

    code: int | None
    subcode: int | None
    message: str
    details: str | None
    http_status: int
    title: str | None = None

    @classmethod
    def from_response(cls, status: int, body: Any) -> GraphError:
        """Meta's `{"error": {message, type, code, error_subcode, error_data: {details}, …}}`; anything else keeps
        the HTTP status alone."""
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return cls(code=None, subcode=None, message=f"HTTP {status} without a Graph error body", details=None,
                       http_status=status)
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, Mapping) else None
        code, subcode = error.get("code"), error.get("error_subcode")
        message = str(error.get("message") or f"HTTP {status}")
        return cls(code=code if isinstance(code, int) else None,
                   subcode=subcode if isinstance(subcode, int) else None,
                   message=message, details=str(details) if details else None, http_status=status,
                   title=str(error.get("error_user_title") or "") or _title_of(message))

    def __str__(self) -> str:
        return f"Graph error {self.code}: {self.message}"

    def verdict(self) -> Verdict:
        if self.code is None:
            return Verdict.RETRY if self.http_status >= 500 or self.http_status == 429 else Verdict.FAIL
        return Verdict.RETRY if self.code in RETRYABLE_CODES else Verdict.FAIL

    @property
    def token_invalid(self) -> bool:
        return self.code in TOKEN_CODES

    def as_meta_error(self) -> dict[str, Any]:
        """The message's `errors[]` entry, in the shape of a failed status's errors (reference §3.23)."""
        entry: dict[str, Any] = {"code": self.code, "title": self.title or self.message, "message": self.message}
        if self.details:
            entry["error_data"] = {"details": self.details}
        if self.code is not None and self.code in HINTS:
            entry["hint"] = HINTS[self.code]
        return entry


def graph_answer(response: httpx.Response) -> Any:
    """The JSON of a Graph API answer, or the GraphError Meta's error body describes (any status but 200)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200:
        raise GraphError.from_response(response.status_code, payload)
    return payload


def _title_of(message: str) -> str:
    """Meta's message is "(#<code>) <title>": the title alone."""
    if message.startswith("(#") and ") " in message:
        return message.split(") ", 1)[1]
    return message


def with_hints(errors: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A failed status's errors with Eva's hint for the codes that need one (131047: send a template)."""
    if not errors:
        return errors
    hinted = []
    for entry in errors:
        code = entry.get("code")
        hinted.append({**entry, "hint": HINTS[code]} if isinstance(code, int) and code in HINTS else entry)
    return hinted
