"""A Kafka consumer as a background worker: each `run()` builds a fresh consumer loop, joins the group and consumes
until stopped. A failure (the broker gone, the group coordinator lost) ends the run with the error, and the service's
`eva_common.runtime.Workers` starts it again after a back-off with a new consumer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from eva_common.kafka.consumer import ConsumerLoop


class ConsumerWorker:
    def __init__(self, factory: Callable[[], ConsumerLoop]) -> None:
        self._factory = factory
        self._loop: ConsumerLoop | None = None
        self._stopping = False
        self.running = asyncio.Event()  # set while a loop is connected to the group

    @property
    def loop(self) -> ConsumerLoop | None:
        return self._loop

    async def run(self) -> None:
        if self._stopping:
            return
        loop = self._loop = self._factory()
        try:
            try:
                await loop.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await loop.close()
                raise
            if self._stopping:
                await loop.close()
                return
            self.running.set()
            await loop.run()  # closes the consumer when it returns or raises
        finally:
            self.running.clear()
            self._loop = None

    async def ready(self) -> bool:
        return self.running.is_set()

    async def stop(self) -> None:
        self._stopping = True
        if self._loop is not None:
            await self._loop.stop()
