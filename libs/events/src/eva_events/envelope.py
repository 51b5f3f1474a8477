"""The event envelope every Kafka event travels in (JSON, camelCase):
`id`, `type`, `version`, `tenantId`, `occurredAt`, `traceparent`, `data`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from eva_events.times import Instant


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class EventEnvelope(CamelModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    version: int = 1
    tenant_id: str
    occurred_at: Instant = Field(default_factory=lambda: datetime.now(UTC))
    traceparent: str | None = None
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)


def make_event(
    event_type: str, *, tenant_id: str, data: BaseModel | dict[str, Any], traceparent: str | None = None
) -> EventEnvelope:
    payload = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    return EventEnvelope(type=event_type, tenant_id=tenant_id, data=payload, traceparent=traceparent)
