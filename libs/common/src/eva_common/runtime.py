"""Process runtime: logging and tracing set-up, an HTTP server that stops on request, and shutdown signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn

from eva_common.logging import configure_logging
from eva_common.settings import ServiceSettings
from eva_common.telemetry import setup_telemetry


def bootstrap_process(settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    setup_telemetry(settings.service_name, settings.otlp_endpoint)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the process owns its signals, not uvicorn
        yield


class HttpServer:
    """Runs an ASGI app with uvicorn inside the service's own event loop."""

    def __init__(self, app: Any, *, host: str, port: int, limit_concurrency: int | None = None) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
            limit_concurrency=limit_concurrency, timeout_graceful_shutdown=5, ws="websockets-sansio",
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("HTTP server exited during start-up")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


async def wait_for_shutdown() -> None:
    """Returns on SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
