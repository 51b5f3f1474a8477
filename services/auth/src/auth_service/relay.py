"""Publishes auth's outbox (audit entries) to Kafka: keeps a producer connected, retrying while the broker is away,
and runs the shared OutboxRelay with it until stopped. Logins never wait for Kafka: entries wait in the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from eva_common.kafka.publisher import KafkaPublisher
from eva_common.outbox import OutboxRelay
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("auth.relay")


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
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="outbox-worker")

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
        if not self._stopping.is_set():
            await self._relay.run()

    async def ready(self) -> bool:
        """Kafka answers for the topic auth publishes to (a readiness check)."""
        if self._publisher is None:
            return False
        return await self._publisher.ready(self._ready_topic)

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._relay is not None:
            await self._relay.stop()
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=timeout)
            if not done:
                logger.warning("outbox worker did not stop in time; cancelling it")
                self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None
