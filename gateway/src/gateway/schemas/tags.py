"""Tag bodies: a tag, the tenant's tags, and the changes an attendant makes. A tag is, field for field,
eva_events.conversation.TagView, which the tag events carry."""

from __future__ import annotations

from typing import Annotated

from eva.conversation.v1 import conversation_pb2
from pydantic import Field, StringConstraints, model_validator

from gateway.schemas.base import CamelModel, optional, require_some_field

TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]


class TagOut(CamelModel):
    id: str
    name: str
    color: str | None
    created_at: str | None
    updated_at: str | None = None

    @classmethod
    def from_proto(cls, tag: conversation_pb2.Tag) -> TagOut:
        return cls(id=tag.id, name=tag.name, color=optional(tag.color), created_at=optional(tag.created_at),
                   updated_at=optional(tag.updated_at))


class TagList(CamelModel):
    items: list[TagOut]
    next_cursor: str | None = Field(default=None, description="Always null: every tag is on the one page")


class TagCreateIn(CamelModel):
    name: TagName
    color: Color | None = Field(default=None, description="`#RRGGBB`")

    def to_proto(self) -> conversation_pb2.CreateTagRequest:
        return conversation_pb2.CreateTagRequest(name=self.name, color=self.color or "")


class TagUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given."""

    name: TagName | None = None
    color: Color | None = Field(default=None, description="`#RRGGBB`")

    @model_validator(mode="after")
    def _changes_something(self) -> TagUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self, tag_id: str) -> conversation_pb2.UpdateTagRequest:
        changes = {name: value for name in ("name", "color") if (value := getattr(self, name)) is not None}
        return conversation_pb2.UpdateTagRequest(tag_id=tag_id, **changes)
