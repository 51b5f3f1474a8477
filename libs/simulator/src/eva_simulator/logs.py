"""JSON logs to stderr, one object per line.

Structured fields go in ``extra={"fields": {...}}``. Callers never pass access tokens or app secrets;
:data:`REDACTED_KEYS` is a second line of defence for keys that look like secrets.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

REDACTED_KEYS = frozenset(
    {"accesstoken", "access_token", "appsecret", "app_secret", "authorization", "token", "secret"}
)


def _redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: ("[redacted]" if key.lower() in REDACTED_KEYS else value) for key, value in fields.items()}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(_redact(fields))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (uvicorn's too) to one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # One line per request comes from our own middleware; uvicorn's access log would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
