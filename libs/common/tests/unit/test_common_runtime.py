"""The one skeleton: workers restarted in-process with back-off, readiness while one is down, the stop order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
import pytest
from eva_common.http.app import create_http_app
from eva_common.metrics import WORKER_RESTARTS, WORKER_UP
from eva_common.runtime import Periodic, ServiceApp, Worker, Workers
from eva_common.settings import KafkaSettings, ServiceSettings
from eva_testing.infra import free_port
from eva_testing.waiting import eventually


class Flaky:
    """Fails its first `failures` runs, then runs until stopped."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0
        self.running = asyncio.Event()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise ConnectionError("broker went away")
        self.running.set()
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()


class Stubborn:
    """Ignores stop requests."""

    def __init__(self) -> None:
        self.cancelled = False

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def stop(self) -> None:
        return None


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return check()
    return probe


def _settings(**values: object) -> ServiceSettings:
    return ServiceSettings(service_client_secret="unit-test-client-secret", **values)  # type: ignore[arg-type]


async def test_a_failed_worker_is_restarted_with_back_off_and_counted() -> None:
    workers = Workers("unit-restart", min_backoff=0.05, max_backoff=0.2)
    flaky = Flaky(failures=3)
    restarts = WORKER_RESTARTS.labels("unit-restart", "flaky")
    before = restarts._value.get()
    workers.start(flaky=flaky)
    await asyncio.wait_for(flaky.running.wait(), 10)
    assert flaky.runs == 4
    assert restarts._value.get() - before == 3
    assert await workers.ready()
    assert WORKER_UP.labels("unit-restart", "flaky")._value.get() == 1
    await workers.stop(timeout=5)
    assert all(task.done() for task in workers.tasks)
    assert not await workers.ready()  # a stopping service is not ready


async def test_readiness_is_false_while_a_worker_is_backing_off() -> None:
    workers = Workers("unit-backoff", min_backoff=30, max_backoff=30)
    flaky = Flaky(failures=1)
    workers.start(flaky=flaky, steady=Flaky(failures=0))
    await eventually(_async(lambda: flaky.runs == 1 and workers.down() == ["flaky"]), timeout=5)
    assert not await workers.ready()
    assert WORKER_UP.labels("unit-backoff", "flaky")._value.get() == 0
    await workers.stop(timeout=5)  # ends the back-off at once instead of waiting 30 s
    assert all(task.done() for task in workers.tasks)
    assert flaky.runs == 1


async def test_a_worker_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    workers = Workers("unit-stubborn")
    stubborn = Stubborn()
    workers.start(stubborn=stubborn)
    await asyncio.sleep(0)
    await workers.stop(timeout=0.1)
    assert stubborn.cancelled
    assert workers.tasks[0].done()


async def test_periodic_runs_its_job_until_stopped() -> None:
    calls: list[int] = []

    async def job() -> None:
        calls.append(1)

    periodic = Periodic(job, interval_seconds=0.01, run_at_start=True)
    task = asyncio.create_task(periodic.run())
    await eventually(_async(lambda: len(calls) >= 3), timeout=5)
    await periodic.stop()
    await asyncio.wait_for(task, 5)
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen


class LoggingWorker(Flaky):
    def __init__(self, log: list[str]) -> None:
        super().__init__(failures=0)
        self.log = log

    async def run(self) -> None:
        await super().run()
        self.log.append("worker ended")


class RecordingApp(ServiceApp):
    """A service whose hooks, worker and closers write down when they run."""

    def __init__(self, settings: ServiceSettings, log: list[str]) -> None:
        super().__init__(settings)
        self.log = log
        self.worker = LoggingWorker(log)
        for name in ("first", "second"):
            self.on_close(name, self._closer(f"close {name}"))
        self.http_app = create_http_app(title="recording", readiness=self.readiness(db=self._db_ready))

    def _closer(self, entry: str) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            self.log.append(entry)
        return close

    async def _db_ready(self) -> bool:
        return True

    async def open(self) -> None:
        self.log.append("open")

    def workers(self) -> Mapping[str, Worker]:
        return {"job": self.worker}

    async def closing(self) -> None:
        self.log.append("closing")

    async def drain(self) -> None:
        self.log.append("drain")


async def test_the_lifecycle_order_and_readiness_over_http() -> None:
    log: list[str] = []
    port = free_port()
    app = RecordingApp(_settings(service_name="recording", http_port=port), log)
    await app.start()
    await asyncio.wait_for(app.worker.running.wait(), 5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"db": "ok", "workers": "ok"}
    await app.stop()
    assert log == ["open", "closing", "drain", "worker ended", "close second", "close first"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/healthz")


async def test_a_closer_that_fails_does_not_keep_the_others_from_running() -> None:
    log: list[str] = []
    app = RecordingApp(_settings(service_name="recording-failing-closer"), log)

    async def broken() -> None:
        raise OSError("already closed")

    app.on_close("broken", broken)
    await app.start(serve_http=False)
    await app.stop()
    assert log[-2:] == ["close second", "close first"]


class ProducingApp(ServiceApp):
    """A service with a producer whose broker is not there."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(settings)
        self.publisher = publisher = self.kafka_publisher(settings)
        self.http_app = create_http_app(title="producing",
                                        readiness=self.readiness(kafka=lambda: publisher.ready("events")))


async def test_a_service_starts_while_kafka_is_away_and_says_so() -> None:
    settings = KafkaSettings(service_client_secret="unit-test-client-secret",  # type: ignore[arg-type]
                             service_name="producing", http_port=free_port(),
                             kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    app = ProducingApp(settings)
    await app.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": "down", "workers": "ok"}
        with pytest.raises(Exception, match="Unable to bootstrap|KafkaConnectionError"):
            await app.publisher.publish("events", key=None, value=b"{}")
    finally:
        await app.stop()
