"""The producer for `<topic>.dlq`, connected on first use (dead letters are rare; start-up need not wait on it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from eva_common.kafka.publisher import KafkaPublisher


class LazyDeadLetterPublisher:
    def __init__(self, *, bootstrap: str, client_id: str) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._publisher: KafkaPublisher | None = None
        self._lock = asyncio.Lock()

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        publisher = await self._connected()
        await publisher.publish(topic, key=key, value=value, headers=headers)

    async def _connected(self) -> KafkaPublisher:
        async with self._lock:
            if self._publisher is None:
                publisher = KafkaPublisher(self._bootstrap, client_id=self._client_id)
                await publisher.start()
                self._publisher = publisher
            return self._publisher

    async def stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
