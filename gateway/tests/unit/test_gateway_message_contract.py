"""The message the REST API shows and the one Socket.io's `message:new` / `message:updated` carry (the messaging
service's event data, eva_events.messaging.MessageView) have the same fields, so a client can use either."""

from __future__ import annotations

from eva_events.messaging import MediaView, MessageView, StatusChangeView
from gateway.schemas.messaging import MediaOut, MessageOut, StatusChangeOut
from pydantic import BaseModel


def fields(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_event_carries_the_rest_message_and_only_adds_the_contact() -> None:
    assert fields(MessageView) - {"contact"} == fields(MessageOut)
    assert fields(MediaView) == fields(MediaOut)
    assert fields(StatusChangeView) == fields(StatusChangeOut)
