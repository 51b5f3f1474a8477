"""The one skeleton every deployable runs on.

A deployable is a `ServiceApp` subclass, its composition root (`<package>/main.py`): the constructor builds every
part (nothing connects there), registers what must be closed (`self.on_close`), declares its servers (an HTTP app,
optionally a gRPC server) and its background workers (`workers()`). `run_service(get_settings, App)` is the whole
entry point: settings are loaded (a bad or missing one exits 2, naming the field and never echoing the value),
logging and tracing are set up, the app is built inside the event loop, started, and drained on SIGTERM/SIGINT.

Restart policy (one for every deployable): a background worker that fails is restarted in-process, with an
exponential back-off (0.5 s doubling to 30 s), counted in `eva_worker_restarts_total{service,worker}`; while a
worker is down or backing off the service's `/readyz` says so ("workers": down) and `eva_worker_up` is 0. Why
in-process rather than exit-and-let-the-supervisor-restart: the usual cause of a worker failing is a dependency that
went away (a broker restart, a database fail-over), which every replica sees at the same moment; exiting would turn
one dependency blip into every pod crash-looping at once, dropping the in-flight HTTP/gRPC requests that share the
process and resetting their connection pools, and the local stack (`make up`) has no supervisor at all. A worker
that keeps failing stays visible (not ready, restart counter rising, an error log per failure) for the operator and
for Kubernetes' readiness probe, which takes the pod out of rotation without killing it.

Stop order: `closing()` (e.g. the gateway closes its sockets) → the HTTP and gRPC servers stop accepting and finish
in-flight requests → `drain()` (work the requests left behind) → every worker is asked to stop and awaited
(cancelled past the grace period) → the registered closers run in reverse order (producers flush, pools close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, Protocol, TypeVar

import uvicorn
import uvloop
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from eva_common.db import create_engine
from eva_common.grpc.server import GrpcServer
from eva_common.http.app import ReadinessCheck
from eva_common.kafka.consumer import BatchHandler, ConsumerLoop, Handler
from eva_common.kafka.publisher import KafkaPublisher
from eva_common.kafka.supervisor import ConsumerWorker
from eva_common.logging import configure_logging
from eva_common.metrics import WORKER_RESTARTS, WORKER_UP
from eva_common.redis import create_redis
from eva_common.settings import (
    ConfigurationError,
    DatabaseSettings,
    KafkaSettings,
    RedisSettings,
    ServiceSettings,
)
from eva_common.telemetry import setup_telemetry

logger = logging.getLogger("eva.runtime")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

MIN_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0  # a worker that ran this long before failing starts its back-off afresh


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


class Worker(Protocol):
    """Background work: `run()` until `stop()` is called (then return); raising means it failed and is restarted.
    `run()` is called again on the same object after a failure, so it must set itself up afresh each time."""

    def run(self) -> Awaitable[None]: ...

    def stop(self) -> Awaitable[None]: ...


class Workers:
    """A service's long-running tasks (outbox relay, consumers, jobs), each supervised in-process (the module's
    restart policy): started together, restarted with back-off when one fails, not ready while one is down, asked to
    stop and awaited on shutdown (cancelled past the grace period)."""

    def __init__(self, service: str = "eva", *, min_backoff: float = MIN_BACKOFF_SECONDS,
                 max_backoff: float = MAX_BACKOFF_SECONDS) -> None:
        self._service = service
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._workers: dict[str, Worker] = {}
        self._down: set[str] = set()
        self._stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, **workers: Worker) -> None:
        """Starts each worker as a task named after its keyword (`outbox_relay=relay`)."""
        for key, worker in workers.items():
            name = key.replace("_", "-")
            self._workers[name] = worker
            self.tasks.append(asyncio.create_task(self._supervise(name, worker), name=name))

    async def _supervise(self, name: str, worker: Worker) -> None:
        delay = self._min_backoff
        up = WORKER_UP.labels(self._service, name)
        while not self._stopping.is_set():
            self._down.discard(name)
            up.set(1)
            started = time.monotonic()
            try:
                await worker.run()
                return  # asked to stop
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping.is_set():
                    return
                if time.monotonic() - started >= HEALTHY_RUN_SECONDS:
                    delay = self._min_backoff
                self._down.add(name)
                up.set(0)
                WORKER_RESTARTS.labels(self._service, name).inc()
                logger.exception("background worker failed; restarting it",
                                 extra={"worker": name, "backoff_seconds": delay})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self._max_backoff)
            finally:
                if self._stopping.is_set():
                    up.set(0)

    def down(self) -> list[str]:
        """The workers that are not running right now (failed and waiting to restart, or ended)."""
        ended = [task.get_name() for task in self.tasks if task.done()]
        return sorted({*self._down, *ended})

    async def ready(self) -> bool:
        return not self._stopping.is_set() and not self.down()

    async def stop(self, timeout: float) -> None:
        """Asks every worker to stop, waits for them, and cancels those still running after `timeout` seconds."""
        self._stopping.set()
        for name, worker in self._workers.items():
            try:
                await worker.stop()
            except Exception:
                logger.exception("worker did not take the stop request", extra={"worker": name})
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            logger.warning("worker did not stop in time; cancelling it", extra={"worker": task.get_name()})
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Periodic:
    """A job run every `interval_seconds` as a background worker (sweeps, expiries). A job that raises fails the
    worker, which `Workers` restarts after its back-off."""

    def __init__(self, job: Callable[[], Awaitable[object]], *, interval_seconds: float,
                 run_at_start: bool = False) -> None:
        self._job = job
        self._interval = interval_seconds
        self._run_at_start = run_at_start
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        if self._run_at_start and not self._stopping.is_set():
            await self._job()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if not self._stopping.is_set():
                await self._job()

    async def stop(self) -> None:
        self._stopping.set()


Closer = Callable[[], Awaitable[object]]


class ServiceApp:
    """The skeleton of a deployable (see the module's docstring). Subclasses build their parts in `__init__` (after
    `super().__init__(settings)`), set `self.http_app` (and `self.grpc_server` where they serve gRPC), and override
    `workers()`; `open()` and `closing()` are hooks for what must happen before serving and before stopping."""

    http_app: Any  # the ASGI app served on EVA_HTTP_PORT: health, metrics and the public API where there is one
    grpc_server: GrpcServer | None = None
    proxy_headers: bool = True
    http_limit_concurrency: int | None = None

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.background = Workers(settings.service_name)
        self._closers: list[tuple[str, Closer]] = []
        self._publishers: list[KafkaPublisher] = []
        self._http: HttpServer | None = None

    # --- what a subclass declares -------------------------------------------------------------------------------
    def workers(self) -> Mapping[str, Worker]:
        """The background workers, by name (`{"outbox_relay": relay}`); started after the servers' ports are open."""
        return {}

    async def open(self) -> None:
        """Connects what must be connected before any request is served (default: nothing)."""

    async def closing(self) -> None:
        """Runs first on stop, before the servers stop accepting (default: nothing)."""

    async def drain(self) -> None:
        """Runs on stop once the servers have finished their requests, before the workers are stopped: work the
        requests left behind (e.g. audit entries still being written) (default: nothing)."""

    def on_close(self, name: str, close: Closer) -> None:
        """Registers a closer; closers run in reverse order of registration, after the workers have stopped."""
        self._closers.append((name, close))

    def postgres(self, settings: DatabaseSettings) -> AsyncEngine:
        """The service's database engine (EVA_DATABASE_URL, EVA_DB_POOL_SIZE), disposed of on stop."""
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        self.on_close("postgres", engine.dispose)
        return engine

    def kafka_publisher(self, settings: KafkaSettings, *, client_id: str | None = None) -> KafkaPublisher:
        """The service's producer: it connects in the background from start() (while Kafka is away the outbox waits,
        a delivery is answered 503, readiness says so; the service still starts), and is flushed and closed on
        stop."""
        publisher = KafkaPublisher(settings.kafka_bootstrap, client_id=client_id or settings.service_name)
        self._publishers.append(publisher)
        self.on_close("kafka publisher", publisher.stop)
        return publisher

    def kafka_consumer(self, settings: KafkaSettings, *, topics: Sequence[str], group_id: str, handler: Handler,
                       concurrency: int = 1, batch_handler: BatchHandler | None = None) -> ConsumerWorker:
        """A consumer as a background worker (each run joins the group with a fresh ConsumerLoop); its dead letters
        go through the service's producer."""
        dead_letters = self._publishers[0] if self._publishers else self.kafka_publisher(settings)
        return ConsumerWorker(lambda: ConsumerLoop(
            bootstrap=settings.kafka_bootstrap, topics=topics, group_id=group_id, handler=handler,
            dead_letters=dead_letters, concurrency=concurrency, batch_handler=batch_handler,
        ))

    def redis(self, settings: RedisSettings) -> Redis:
        """A Redis client (EVA_REDIS_URL), closed on stop."""
        client = create_redis(settings.redis_url)
        self.on_close("redis", client.aclose)
        return client

    def readiness(self, **checks: ReadinessCheck) -> dict[str, ReadinessCheck]:
        """The service's readiness checks plus its workers' ("workers": every background worker is running)."""
        return {**checks, "workers": self.background.ready}

    # --- the lifecycle, the same for every deployable ----------------------------------------------------------
    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self.background.tasks

    async def start(self, *, serve_http: bool = True) -> None:
        for publisher in self._publishers:
            publisher.start_in_background()
        await self.open()
        if self.grpc_server is not None:
            await self.grpc_server.start()
        if serve_http:
            self._http = HttpServer(self.http_app, host=self.settings.http_host, port=self.settings.http_port,
                                    limit_concurrency=self.http_limit_concurrency, proxy_headers=self.proxy_headers)
            await self._http.start()
        self.background.start(**self.workers())
        logger.info("service started", extra={
            "service": self.settings.service_name, "http_port": self.settings.http_port if serve_http else None,
            "grpc_port": self.grpc_server.port if self.grpc_server is not None else None})

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace_seconds
        logger.info("service stopping", extra={"service": self.settings.service_name})
        await self.closing()
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace)
        await self.drain()
        await self.background.stop(grace + 10)
        while self._closers:
            name, close = self._closers.pop()
            try:
                await close()
            except Exception:
                logger.exception("closing failed", extra={"resource": name})
        logger.info("service stopped", extra={"service": self.settings.service_name})


AppT = TypeVar("AppT", bound=ServiceApp)


async def serve_until_shutdown(build: Callable[[], ServiceApp]) -> int:
    """Builds the app inside the running loop, starts it, and stops it on SIGTERM/SIGINT (exit code 0). A failure
    to start (a port taken, a bad configuration found late) stops what was started and exits 1."""
    shutdown = asyncio.create_task(wait_for_shutdown(), name="shutdown-signal")
    await asyncio.sleep(0)  # installs the signal handlers before anything slow happens
    try:
        app = build()
    except ConfigurationError as error:
        logger.error("invalid configuration", extra={"problem": str(error)})
        shutdown.cancel()
        return 2
    try:
        await app.start()
    except Exception:
        logger.exception("service failed to start")
        shutdown.cancel()
        await app.stop()
        return 1
    await shutdown
    await app.stop()
    return 0


def run_service(settings_factory: Callable[[], SettingsT], app_factory: Callable[[SettingsT], ServiceApp],
                *, name: str) -> NoReturn:
    """The entry point of every deployable (`python -m <package>` → `main.run()` → this)."""
    settings = load_settings(settings_factory, name)
    bootstrap_process(settings)
    # uvloop: the event loop's own work (callbacks, socket reads and writes) is a large share of every message's CPU
    raise SystemExit(uvloop.run(serve_until_shutdown(lambda: app_factory(settings))))
