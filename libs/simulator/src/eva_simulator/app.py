"""Composition root: settings → state, webhook sender, status emitter → FastAPI app."""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response

from eva_simulator import admin, graph, media, templates
from eva_simulator.runtime import Simulator
from eva_simulator.settings import Settings
from eva_simulator.state import SimulatorState
from eva_simulator.statuses import StatusEmitter
from eva_simulator.webhooks import WebhookSender

logger = logging.getLogger("eva_simulator.http")


def build_simulator(settings: Settings, *, http: httpx.AsyncClient | None = None) -> Simulator:
    """Wire one simulator instance. ``http`` (used for webhooks and the handshake) may be injected."""
    state = SimulatorState(config=settings.runtime_config(), template_seeds=settings.template_seeds())
    for seed in settings.numbers:
        state.upsert_number(seed.to_number())
    client = http or httpx.AsyncClient(follow_redirects=False)
    sender = WebhookSender(policy=settings.retry_policy(), client=client)
    return Simulator(
        settings=settings,
        state=state,
        sender=sender,
        statuses=StatusEmitter(sender=sender, clock=state.clock),
        http=client,
    )


def create_app(settings: Settings | None = None, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    """The simulator as an ASGI app; ``app.state.simulator`` holds its :class:`Simulator`."""
    simulator = build_simulator(settings or Settings(), http=http)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await simulator.aclose()

    app = FastAPI(
        title="Eva WhatsApp Cloud API simulator",
        description="A fake Meta Graph API (v21.0) that also sends signed webhooks like Meta.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.simulator = simulator

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # Path only: query strings may carry ?access_token=.
        logger.info(
            "request",
            extra={
                "fields": {
                    "event": "http_request",
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "durationMs": round((time.perf_counter() - started) * 1000, 3),
                }
            },
        )
        return response

    app.include_router(admin.health_router)
    app.include_router(admin.router)
    app.include_router(media.control_router)
    app.include_router(media.download_router)
    app.include_router(templates.control_router)
    app.include_router(graph.router)
    app.include_router(templates.graph_router)
    app.include_router(media.graph_router)
    return app
