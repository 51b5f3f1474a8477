"""Contact bodies: pages of contacts, creating and changing one (the contact itself is conversation.ContactOut)."""

from __future__ import annotations

from typing import Annotated

from eva.conversation.v1 import conversation_pb2
from pydantic import AfterValidator, StringConstraints, model_validator

from gateway.schemas.base import CamelModel, require_some_field
from gateway.schemas.conversation import ContactOut

ContactName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _digits_only(phone: str) -> str:
    return phone.removeprefix("+")


# The guest's number with its country code; a leading '+' is accepted and dropped (the services store digits).
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[1-9][0-9]{5,14}$"),
                  AfterValidator(_digits_only)]


class ContactPage(CamelModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactCreateIn(CamelModel):
    name: ContactName
    phone: Phone

    def to_proto(self) -> conversation_pb2.CreateContactRequest:
        return conversation_pb2.CreateContactRequest(name=self.name, phone=self.phone)


class ContactUpdateIn(CamelModel):
    """Only the fields given change; at least one must be given."""

    name: ContactName | None = None
    phone: Phone | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> ContactUpdateIn:
        require_some_field(self)
        return self

    def to_proto(self, contact_id: str) -> conversation_pb2.UpdateContactRequest:
        changes = {name: value for name in ("name", "phone") if (value := getattr(self, name)) is not None}
        return conversation_pb2.UpdateContactRequest(contact_id=contact_id, **changes)
