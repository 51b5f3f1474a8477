"""Kafka helpers for tests: unique topics, and a recording publisher for unit tests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eva_common.kafka.admin import ensure_topics
from eva_common.kafka.publisher import OutgoingRecord
from eva_events.topics import TopicSpec


def unique_topic(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    await ensure_topics(bootstrap, [TopicSpec(name, partitions, 4 * 1024 * 1024) for name in names])


@dataclass
class RecordingPublisher:
    """A fake EventPublisher that keeps what was published (unit tests only)."""

    records: list[tuple[str, bytes | None, bytes, dict[str, str]]] = field(default_factory=list)

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self.records.append((topic, key, value, dict(headers or {})))

    async def publish_batch(self, records: Sequence[OutgoingRecord]) -> tuple[int, BaseException | None]:
        for record in records:
            await self.publish(record.topic, key=record.key, value=record.value, headers=record.headers)
        return len(records), None
