"""Process runtime: logging and tracing set-up, an HTTP server that stops on request, and shutdown signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import uvicorn
from pydantic import ValidationError

from eva_common.logging import configure_logging
from eva_common.settings import ServiceSettings
from eva_common.telemetry import setup_telemetry

logger = logging.getLogger("eva.runtime")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def bootstrap_process(settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    setup_telemetry(settings.service_name, settings.otlp_endpoint)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the process owns its signals, not uvicorn
        yield


class HttpServer:
    """Runs an ASGI app with uvicorn inside the service's own event loop."""

    def __init__(
        self, app: Any, *, host: str, port: int, limit_concurrency: int | None = None, proxy_headers: bool = True
    ) -> None:
        # proxy_headers=False keeps the socket peer in scope["client"]: uvicorn otherwise rewrites it from
        # X-Forwarded-For whenever the peer is 127.0.0.1 (e.g. a sidecar), which an app that applies its own
        # trusted-proxy rules (the gateway) must not allow.
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
            limit_concurrency=limit_concurrency, timeout_graceful_shutdown=5, ws="websockets-sansio",
            proxy_headers=proxy_headers,
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


def load_settings(factory: Callable[[], SettingsT], service_name: str) -> SettingsT:
    """Builds the settings or exits 2, naming the bad fields without echoing their values (they may be secrets)."""
    try:
        return factory()
    except ValidationError as error:
        configure_logging(service_name)
        problems = [{"field": ".".join(map(str, e["loc"])), "problem": e["msg"]}
                    for e in error.errors(include_input=False, include_url=False)]
        logger.error("invalid configuration", extra={"problems": problems})
        raise SystemExit(2) from None


class Workers:
    """A service's long-running tasks (outbox relay, consumers, jobs): started together, not ready once one has
    ended, awaited on shutdown (and cancelled past the grace period)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, **workers: Coroutine[Any, Any, None]) -> None:
        """Starts each coroutine as a task named after its keyword (`outbox_relay=relay.run()`)."""
        self.tasks.extend(asyncio.create_task(work, name=name.replace("_", "-")) for name, work in workers.items())

    async def ready(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    async def wait(self, timeout: float) -> None:
        """Waits for the tasks to end (their loops were asked to stop), cancelling those still running after
        `timeout` seconds."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Service(Protocol):
    """A composed service: started once, stopped once, with background workers that must not die."""

    @property
    def tasks(self) -> Sequence[asyncio.Task[None]]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_shutdown(service: Service) -> int:
    """Runs until SIGTERM/SIGINT (exit code 0) or until a background worker dies (1, so it gets restarted)."""
    shutdown = asyncio.create_task(wait_for_shutdown(), name="shutdown-signal")
    await asyncio.sleep(0)  # installs the signal handlers before anything slow happens
    await service.start()
    done, _ = await asyncio.wait([shutdown, *service.tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = shutdown not in done
    if crashed:
        for task in done:
            logger.error("a background worker stopped; shutting down", extra={"task": task.get_name()},
                         exc_info=task.exception() if not task.cancelled() else None)
    shutdown.cancel()
    await service.stop()
    return 1 if crashed else 0
