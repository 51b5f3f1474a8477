"""Publishes the outbox to Kafka: keeps a producer connected (retrying while the broker is away) and runs the
shared OutboxRelay with it until stopped. Also the lazily connected producer of the consumers' dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from eva_common.kafka.publisher import KafkaPublisher
from eva_common.outbox import OutboxRelay
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("tenant.relay")


class OutboxWorker:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bootstrap: str,
        client_id: str,
        poll_seconds: float,
        ready_topic: str,
        retry_seconds: float = 2.0,
    ) -> None:
        self._engine = engine
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._poll = poll_seconds
        self._retry = retry_seconds
        self._ready_topic = ready_topic
        self._publisher: KafkaPublisher | None = None
        self._relay: OutboxRelay | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def _connect(self) -> KafkaPublisher | None:
        while not self._stopping.is_set():
            publisher = KafkaPublisher(self._bootstrap, client_id=self._client_id)
            try:
                await publisher.start()
                return publisher
            except Exception as error:
                logger.warning("kafka is not reachable; retrying", extra={"error": type(error).__name__})
                with contextlib.suppress(Exception):
                    await publisher.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._retry)
        return None

    async def _run(self) -> None:
        publisher = await self._connect()
        if publisher is None:
            return
        self._publisher = publisher
        self._relay = OutboxRelay(engine=self._engine, publisher=publisher, poll_seconds=self._poll)
        if self._stopping.is_set():
            return
        await self._relay.run()

    async def ready(self) -> bool:
        """Kafka answers for the topic this service publishes to (the readiness check)."""
        if self._publisher is None:
            return False
        return await self._publisher.ready(self._ready_topic)

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._relay is not None:
            await self._relay.stop()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if done and not self._task.cancelled() and self._task.exception() is not None:
                logger.error("outbox worker failed", exc_info=self._task.exception())
            if not done:
                logger.warning("outbox worker did not stop in time; cancelling it")
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None


class LazyPublisher:
    """A producer connected on first use: the consumers' dead letters are rare, so start-up need not wait on it."""

    def __init__(self, *, bootstrap: str, client_id: str) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._publisher: KafkaPublisher | None = None
        self._lock = asyncio.Lock()

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        async with self._lock:
            if self._publisher is None:
                publisher = KafkaPublisher(self._bootstrap, client_id=self._client_id)
                await publisher.start()
                self._publisher = publisher
        await self._publisher.publish(topic, key=key, value=value, headers=headers)

    async def stop(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
