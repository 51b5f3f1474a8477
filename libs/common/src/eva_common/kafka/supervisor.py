"""Keeps a Kafka consumer loop running: (re)connects with back-off, and stops it on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from eva_common.kafka.consumer import ConsumerLoop, describe

logger = logging.getLogger(__name__)


class SupervisedConsumer:
    def __init__(self, *, name: str, factory: Callable[[], ConsumerLoop], max_backoff_seconds: float = 10.0) -> None:
        self._name = name
        self._factory = factory
        self._max_backoff = max_backoff_seconds
        self._stopping = asyncio.Event()
        self._loop: ConsumerLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.running = asyncio.Event()  # set while a loop is connected

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"consumer-{self._name}")

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            loop = self._factory()
            try:
                await loop.start()
            except Exception as error:
                logger.warning("consumer cannot connect yet; retrying", extra={"consumer": self._name,
                                                                              "error": describe(error)})
                with contextlib.suppress(Exception):
                    await loop.close()
                await self._pause(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            delay = 0.5
            self._loop = loop
            self.running.set()
            try:
                await loop.run()
            except Exception:
                logger.exception("consumer loop failed; restarting", extra={"consumer": self._name})
                await self._pause(delay)
            finally:
                self.running.clear()
                self._loop = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None:
            await self._loop.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
