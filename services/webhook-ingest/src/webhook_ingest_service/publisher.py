"""The Kafka producer behind the webhook route, started (and restarted) in the background.

A delivery waits for the broker's acknowledgement under the route's deadline; while Kafka cannot be reached the
wait simply runs out and Meta is told to retry (503), instead of the process refusing to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from eva_common.kafka.publisher import KafkaPublisher

logger = logging.getLogger(__name__)


class SupervisedPublisher:
    def __init__(
        self,
        *,
        factory: Callable[[], KafkaPublisher],
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 10.0,
    ) -> None:
        self._factory = factory
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._publisher: KafkaPublisher | None = None
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts connecting in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name="kafka-producer-connect")

    async def wait_started(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _connect(self) -> None:
        delay = self._retry
        while True:
            publisher = self._factory()
            try:
                await publisher.start()
            except Exception as error:
                logger.warning("Kafka producer cannot connect yet; retrying", extra={"error": repr(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry)
                continue
            self._publisher = publisher
            self._started.set()
            logger.info("Kafka producer connected")
            return

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Returns once the broker acknowledged the record; waits for the producer while it is connecting."""
        await self._started.wait()
        assert self._publisher is not None
        await self._publisher.publish(topic, key=key, value=value, headers=headers)

    async def ready(self, topic: str) -> bool:
        if self._publisher is None:
            return False
        return await self._publisher.ready(topic)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
