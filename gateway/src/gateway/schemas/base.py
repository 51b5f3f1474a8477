"""The base of every public JSON body: snake_case in Python, camelCase on the wire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def optional(value: str) -> str | None:
    """proto3 has no null for strings: an empty one means 'not set'."""
    return value or None
