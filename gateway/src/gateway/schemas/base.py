"""The base of every public JSON body: snake_case in Python, camelCase on the wire."""

from __future__ import annotations

import json
from typing import Any

from eva_common.paging import DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE  # the one page-size rule of every list
from eva_common.paging import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from eva_common.timefmt import rfc3339 as rfc3339  # UTC, milliseconds, Z: requests and responses alike
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def optional(value: str) -> str | None:
    """proto3 has no null for strings: an empty one means 'not set'."""
    return value or None


def parse_json_object(document: str) -> dict[str, Any]:
    """A JSON object carried as a proto string; an empty or unreadable document is `{}`, a non-object is
    `{"value": …}`."""
    if not document:
        return {}
    try:
        parsed = json.loads(document)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def require_some_field(model: BaseModel) -> None:
    """A PATCH body must change something: at least one field given, and not null."""
    if not any(getattr(model, name) is not None for name in model.model_fields_set):
        raise ValueError("give at least one field to change")
