"""The frontend's own Socket.io client (npm socket.io-client@4 under Node) for the end-to-end tests.

`JsDriver` runs tests-e2e/js/driver.mjs as a subprocess and talks to it over JSON lines (commands on stdin; replies,
received events and the sockets' life on stdout); one driver holds many named sockets. `JsSocket` is one of them:
connect, emit with or without an ack, wait for an event, read what it received. Everything received is kept in
arrival order with the driver's clock (epoch ms), so tests can order acks and events and measure latencies.

Install the client once with `npm ci --prefix tests-e2e/js` (scripts/bootstrap.sh does it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "driver.mjs"
DEFAULT_TIMEOUT = 15.0
# The client's own default: long-polling first, then the upgrade to WebSocket.
DEFAULT_TRANSPORTS = None
WEBSOCKET_ONLY = ["websocket"]


class DriverError(AssertionError):
    """The driver refused a command (a connect_error, an ack that never came, an unknown socket)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(f"{message} {data!r}" if data is not None else message)
        self.message = message
        self.data = data


@dataclass(frozen=True)
class Received:
    """One thing a socket received: a server event (`kind` "event", `data` its first argument) or a change of the
    socket's life (`kind` "lifecycle": open, upgrade, connect, disconnect, connect_error). `index` orders everything the
    driver received; `t` is the driver's clock in epoch milliseconds."""

    index: int
    socket: str
    kind: str
    event: str
    args: list[Any]
    t: float

    @property
    def data(self) -> Any:
        return self.args[0] if self.args else None


class JsDriver:
    """One `node driver.mjs` process and the sockets it holds."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()
        self._names = itertools.count(1)
        self.received: list[Received] = []
        self.stderr = b""

    async def start(self) -> JsDriver:
        node = shutil.which("node")
        assert node, "node is not installed (scripts/bootstrap.sh installs the e2e client's packages with npm)"
        assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), (
            "socket.io-client is not installed: run `npm ci --prefix tests-e2e/js` (scripts/bootstrap.sh does)")
        self._process = await asyncio.create_subprocess_exec(
            node, str(DRIVER), cwd=JS_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read(), name="js-driver-reader")
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            if message.get("type") == "reply":
                future = self._replies.pop(int(message["id"]), None)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            async with self._changed:
                self.received.append(Received(
                    index=len(self.received), socket=str(message.get("socket")), kind=str(message.get("type")),
                    event=str(message.get("event")),
                    args=list(message["args"]) if "args" in message else [message.get("data")],
                    t=float(message.get("t", 0.0))))
                self._changed.notify_all()
        for future in self._replies.values():  # the driver is gone: nothing will answer
            if not future.done():
                future.set_exception(DriverError("the node driver exited", self.stderr.decode(errors="replace")))
        async with self._changed:
            self._changed.notify_all()

    async def command(self, op: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Any:
        """Sends one command and returns its result; raises DriverError when the driver reports a failure."""
        assert self._process is not None and self._process.stdin is not None, "start() the driver first"
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        self._process.stdin.write(json.dumps({"id": command_id, "op": op, **fields}).encode() + b"\n")
        await self._process.stdin.drain()
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(command_id, None)
        if not reply["ok"]:
            error = reply.get("error") or {}
            raise DriverError(str(error.get("message")), error.get("data"))
        return reply.get("result")

    def socket(self, name: str | None = None) -> JsSocket:
        return JsSocket(self, name or f"s{next(self._names)}")

    async def wait(self, match: Callable[[Received], bool], timeout: float = DEFAULT_TIMEOUT,
                   what: str = "an event") -> Received:
        """The first received item (in arrival order) that `match`es, waiting up to `timeout` seconds for it."""
        async def found() -> Received:
            async with self._changed:
                while True:
                    for item in self.received:
                        if match(item):
                            return item
                    if self._reader is not None and self._reader.done():
                        raise DriverError("the node driver exited", self.stderr.decode(errors="replace"))
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(found(), timeout)
        except TimeoutError:
            seen = [(item.socket, item.event) for item in self.received[-30:]]
            raise AssertionError(f"{what} did not arrive within {timeout}s; last received: {seen}") from None

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.write(b'{"id":0,"op":"exit"}\n')
            await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        if process.stderr is not None:
            self.stderr = await process.stderr.read()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)

    async def __aenter__(self) -> JsDriver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class JsSocket:
    """A socket.io-client@4 socket inside a driver."""

    def __init__(self, driver: JsDriver, name: str) -> None:
        self.driver = driver
        self.name = name
        self.sid: str | None = None
        self.transport: str | None = None  # when `connect` fired
        self.opened_with: str | None = None  # the Engine.IO connection's first transport

    async def connect(self, url: str, token: str | None = None, *, auth: dict[str, Any] | None = None,
                      transports: list[str] | None = DEFAULT_TRANSPORTS, timeout: float = 10.0) -> JsSocket:
        """Connects (with `auth: {token}` when a token is given) and waits for `connect`; a `connect_error` raises
        DriverError with the server's message and data."""
        handshake = auth if auth is not None else ({"token": token} if token is not None else None)
        result = await self.driver.command("connect", timeout=timeout + 5, socket=self.name, url=url,
                                           auth=handshake, transports=transports, timeoutMs=int(timeout * 1000))
        self.sid, self.transport, self.opened_with = result["sid"], result["transport"], result["opened"]
        return self

    async def connect_error(self, url: str, token: str | None = None, *, auth: dict[str, Any] | None = None,
                            transports: list[str] | None = DEFAULT_TRANSPORTS, timeout: float = 10.0) -> DriverError:
        """Connects expecting a `connect_error`; returns it (fails when the connection is accepted)."""
        try:
            await self.connect(url, token, auth=auth, transports=transports, timeout=timeout)
        except DriverError as error:
            return error
        raise AssertionError(f"the connection of {self.name} was accepted")

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Emits `event` with `args` (none, one or several) and returns the server's acknowledgement."""
        result = await self.driver.command("emit", timeout=timeout + 5, socket=self.name, event=event,
                                           args=list(args), ack=True, timeoutMs=int(timeout * 1000))
        return result["ack"]

    async def emit_acked_at(self, event: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> tuple[Any, int]:
        """Like emit_with_ack, also returning how many items the driver had received when the ack was handled: the
        events the server sent before its ack are `received_by(...)[:mark]`."""
        ack = await self.emit_with_ack(event, *args, timeout=timeout)
        return ack, len(self.driver.received)

    async def emit(self, event: str, *args: Any) -> None:
        await self.driver.command("emit", socket=self.name, event=event, args=list(args), ack=False)

    async def burst(self, event: str, *args: Any, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
        """Emits `event` `count` times at once (each with an ack); returns the acks in emit order."""
        result = await self.driver.command("burst", timeout=timeout + 5, socket=self.name, event=event,
                                           args=list(args), count=count, timeoutMs=int(timeout * 1000))
        acks: list[Any] = result["acks"]
        return acks

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.driver.command("state", socket=self.name)
        return result

    async def wait_for(self, event: str, predicate: Callable[[Any], bool] = lambda _: True,
                       timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The data of the first server event `event` (already received or still to come) matching `predicate`."""
        item = await self.driver.wait(
            lambda r: r.socket == self.name and r.kind == "event" and r.event == event and predicate(r.data),
            timeout, what=f"{event} on {self.name}")
        return item.data

    async def wait_lifecycle(self, event: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The data of the socket's first `open`/`upgrade`/`connect`/`disconnect`/`connect_error`."""
        item = await self.driver.wait(lambda r: r.socket == self.name and r.kind == "lifecycle" and r.event == event,
                                      timeout, what=f"{event} of {self.name}")
        return item.data

    def received(self, kind: str = "event") -> list[Received]:
        return [r for r in self.driver.received if r.socket == self.name and r.kind == kind]

    def events(self, name: str | None = None) -> list[Any]:
        """The data of every server event received so far (of one name, or all as (name, data) pairs)."""
        if name is None:
            return [(r.event, r.data) for r in self.received()]
        return [r.data for r in self.received() if r.event == name]

    def seq_events(self, upto: int | None = None) -> list[Received]:
        """The seq-bearing events received (in order), optionally only among the driver's first `upto` items."""
        return [r for r in self.received() if (upto is None or r.index < upto)
                and isinstance(r.data, dict) and isinstance(r.data.get("seq"), int)]

    def disconnected(self) -> bool:
        return any(r.event == "disconnect" for r in self.received("lifecycle"))

    async def disconnect(self) -> None:
        """Closes the socket from the client's side (the driver forgets it)."""
        await self.driver.command("disconnect", socket=self.name)

    async def close(self) -> None:
        """Like disconnect, but a socket the driver no longer holds (closed already) is fine."""
        with contextlib.suppress(DriverError):
            await self.disconnect()

