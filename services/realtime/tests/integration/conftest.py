"""Real Redis and Kafka, and a real python-socketio server (AsyncRedisManager on a test channel) under uvicorn,
standing in for the gateway that hosts the sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
from eva_common.redis import create_redis
from eva_common.runtime import HttpServer
from eva_testing.infra import TestInfra, free_port, test_infra
from redis.asyncio import Redis


@pytest.fixture(scope="session")
def infra() -> TestInfra:
    return test_infra()


@pytest.fixture(scope="module")
async def redis(infra: TestInfra) -> AsyncIterator[Redis]:
    client = create_redis(infra.redis_url)
    yield client
    await client.aclose()


@dataclass
class SocketServer:
    url: str
    channel: str


@pytest.fixture(scope="module")
async def socket_server(infra: TestInfra) -> AsyncIterator[SocketServer]:
    channel = f"test-socketio-{uuid.uuid4().hex[:8]}"
    sio = socketio.AsyncServer(async_mode="asgi",
                               client_manager=socketio.AsyncRedisManager(infra.redis_url, channel=channel))

    @sio.on("test:join")  # test-only: the real gateway checks the caller's token and tenant first
    async def join(sid: str, data: dict[str, str]) -> bool:
        await sio.enter_room(sid, data["room"])
        return True

    port = free_port()
    http = HttpServer(socketio.ASGIApp(sio), host="127.0.0.1", port=port)
    await http.start()
    yield SocketServer(url=f"http://127.0.0.1:{port}", channel=channel)
    await http.stop()


@dataclass
class Browser:
    """A socket.io client joined to one room, recording what it receives."""

    client: socketio.AsyncClient
    received: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    async def next(self, timeout: float = 60.0) -> tuple[str, Any]:
        return await asyncio.wait_for(self.received.get(), timeout)


BrowserFactory = Callable[[str], AbstractAsyncContextManager[Browser]]


@pytest.fixture(scope="module")
def browser(socket_server: SocketServer, redis: Redis) -> BrowserFactory:
    @asynccontextmanager
    async def open_browser(room: str) -> AsyncIterator[Browser]:
        client = socketio.AsyncClient(reconnection=False)
        browser = Browser(client=client)

        @client.on("*")
        async def record(event: str, data: Any) -> None:
            await browser.received.put((event, data))

        await client.connect(socket_server.url, transports=["websocket"], wait_timeout=10)
        assert await client.call("test:join", {"room": room}, timeout=10) is True
        # the server's Redis manager subscribes lazily (on its first connection); wait until it listens
        async def subscribed() -> None:
            while True:
                counts = dict(await redis.pubsub_numsub(socket_server.channel))
                if counts.get(socket_server.channel, 0) >= 1:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(subscribed(), 10)
        try:
            yield browser
        finally:
            await client.disconnect()

    return open_browser
