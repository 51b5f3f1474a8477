"""Ingest against a bare HMAC endpoint (issue 11): requests/s of webhook-ingest's POST /webhooks/whatsapp and of an
endpoint that only verifies X-Hub-Signature-256, under the same closed-loop load, in the same run.

    uv run --no-sync python scripts/bench/bare_hmac.py [--connections 32] [--duration 10] [--runs 3]
        [--bare asgi,fastapi,eva] [--delivery same] [--profile dev] [--ingest URL] [--gateway URL]
        [--simulator URL] [--json]

It registers a hotel of its own (as scripts/bench/ingest.py does; its app secret signs the deliveries) and starts the
bare endpoints, each a process of its own on a free loopback port: this file run with --serve, under uvicorn (its
defaults, as `uvicorn module:app` runs: uvloop and httptools when installed, as Eva's services run), with the app
secret in its environment. Every bare endpoint reads the whole body, verifies the signature with the function ingest
uses (webhook_ingest_service.signature.verify_signature: HMAC-SHA256 of the raw bytes, constant-time comparison) and
answers 200 `{"status":"accepted"}` (401 when it does not verify):
  asgi     a plain ASGI callable: uvicorn and the HMAC, nothing else (the issue's "bare uvicorn endpoint");
  fastapi  the same route in a plain FastAPI app (the framework ingest uses);
  eva      the same route in eva_common's app factory (create_http_app: request ids, traces, access metrics and
           the JSON access log every Eva service has), logging configured as a service's.
Ingest does what it does for Meta: signature, tenant look-up, a Kafka record, 200 only after Kafka's acknowledgement.

Load: --connections keep-alive HTTP/1.1 connections (a small asyncio client on uvloop, one request at a time per
connection, each sent as soon as the last answer was read: closed loop) for --duration seconds per endpoint. Every
endpoint gets the same request: one signed text delivery (--delivery same, as `wrk` with one body: messaging then
stores one message and finds the rest duplicates of its wamid) or, with --delivery unique, a delivery of its own per
request (each a new guest message downstream: bounded by --max-unique). Each run measures every endpoint in turn,
the order reversed from one run to the next, each phase after the stack is quiet again (ingest's deliveries are
consumed downstream after its phase). Per phase: 200s per second, p50/p99 time to the answer, answers by status,
the server process's CPU per request and its cores, and the client's cores (near one core means the client, not the
server, was the limit). The figure: ingest/bare requests per second, per run and the median over runs (target
>= 0.25 of `asgi`).

Bounded: connections <= 64, duration <= 60 s, runs <= 10, requests per phase <= 2,000,000 (ingest's <= 100,000),
unique deliveries <= 20,000; loopback only. Results also in .local/bench/bare_hmac.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import stack_cpu
import uvloop
from eva_simulator.signing import SIGNATURE_HEADER, signature
from fastapi import APIRouter, FastAPI, Request  # module level: FastAPI resolves the route's annotations here
from fastapi.responses import JSONResponse
from ingest import loopback_only, new_wamid, register_hotel, text_delivery
from realtime import PROFILES, eva_only, percentile, profile_urls, stack_processes, write_result

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SECRET_ENV = "BENCH_APP_SECRET"  # noqa: S105 - the name of a variable
PATH = "/webhooks/whatsapp"
FLAVOURS = ("asgi", "fastapi", "eva")
MAX_CONNECTIONS = 64
MAX_DURATION = 60.0
MAX_RUNS = 10
MAX_REQUESTS = 2_000_000
MAX_INGEST_REQUESTS = 100_000
MAX_UNIQUE = 20_000
ACCEPTED = b'{"status":"accepted"}'
REFUSED = b'{"status":"refused"}'


# ---------------------------------------------------------------- the bare endpoints (this file run with --serve)


def asgi_app(secret: str) -> Any:
    """A plain ASGI callable: read the body, verify the signature, answer."""
    from webhook_ingest_service.signature import verify_signature

    header_name = SIGNATURE_HEADER.lower().encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        header = next((value.decode("latin-1") for name, value in scope["headers"] if name == header_name), None)
        ok = scope["method"] == "POST" and scope["path"] == PATH and verify_signature(body, header, secret)
        answer = ACCEPTED if ok else REFUSED
        await send({"type": "http.response.start", "status": 200 if ok else 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    return app


def fastapi_app(secret: str, *, eva: bool) -> Any:
    """The same route in FastAPI, or in eva_common's app factory with a service's logging (`eva`)."""
    from webhook_ingest_service.signature import verify_signature

    router = APIRouter()

    @router.post(PATH)
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret):
            return JSONResponse({"status": "refused"}, status_code=401)
        return JSONResponse({"status": "accepted"})

    if not eva:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(router)
        return app
    from eva_common.http.app import create_http_app
    from eva_common.logging import configure_logging
    from eva_common.telemetry import setup_telemetry

    configure_logging("bench-bare-hmac", "INFO")
    setup_telemetry("bench-bare-hmac", None)
    return create_http_app(title="bare HMAC", readiness={}, routers=[router])


def serve(flavour: str, port: int) -> None:
    import uvicorn

    secret = os.environ[SECRET_ENV]
    app = asgi_app(secret) if flavour == "asgi" else fastapi_app(secret, eva=flavour == "eva")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off" if flavour == "asgi" else "on")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BareServer:
    flavour: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_bare(flavour: str, secret: str, log: Path) -> BareServer:
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(Path(__file__).resolve()), "--serve", flavour, "--port", str(port)],
            cwd=ROOT, env={**os.environ, SECRET_ENV: secret}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    server = BareServer(flavour, port, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the bare {flavour} endpoint exited ({process.returncode}); see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(f"{server.url}{PATH}", content=b"{}", timeout=2).status_code == 401:
                return server
        time.sleep(0.2)
    stop_bare(server)
    raise SystemExit(f"the bare {flavour} endpoint did not answer within 30 s; see {log}")


def stop_bare(server: BareServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# ---------------------------------------------------------------- the client


class ResponseError(Exception):
    pass


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; answers need a Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length is None:
            waiter.set_exception(ResponseError("an answer without Content-Length"))
            return
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        waiter.set_result((int(lines[0].split()[1]), close))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("the server closed the connection"))
        self.transport = None

    async def request(self, data: bytes) -> tuple[int, bool]:
        if self.transport is None:
            raise ConnectionResetError("closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def raw_request(url: str, body: bytes, secret: str) -> bytes:
    parts = urlsplit(url)
    return (f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"{SIGNATURE_HEADER}: {signature(body, secret)}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Phase:
    endpoint: str
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    exhausted: bool = False

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get("200", 0)
        return {"endpoint": self.endpoint, "requests": self.requests, "answers": dict(sorted(self.statuses.items())),
                "ok_per_s": round(ok / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(percentile(self.latencies_ms, 0.5), 2),
                "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
                "seconds": round(self.seconds, 2), "bounded_by_request_cap": self.exhausted}


async def closed_loop(phase: Phase, url: str, requests: Sequence[bytes], *, connections: int, duration: float,
                      cap: int, cycle: bool) -> None:
    """`connections` clients, each sending its next request as soon as its last answer was read, until `duration`
    seconds passed or `cap` requests were sent (the requests in turn; once each unless `cycle`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    next_index = 0

    async def connect() -> Connection:
        _, protocol = await loop.create_connection(Connection, host, port)
        return protocol

    async def client(deadline: float) -> None:
        nonlocal next_index
        connection = await connect()
        try:
            while time.perf_counter() < deadline:
                if next_index >= cap or (not cycle and next_index >= len(requests)):
                    phase.exhausted = True
                    return
                data = requests[next_index % len(requests)]
                next_index += 1
                phase.requests += 1
                started = time.perf_counter()
                try:
                    status, close = await connection.request(data)
                except (ConnectionError, ResponseError) as error:
                    phase.statuses[f"error:{type(error).__name__}"] += 1
                    connection.close()
                    connection = await connect()
                    continue
                phase.statuses[str(status)] += 1
                if status == 200:
                    phase.latencies_ms.append((time.perf_counter() - started) * 1000)
                if close:
                    connection.close()
                    connection = await connect()
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(started + duration) for _ in range(connections)))
    phase.seconds = time.perf_counter() - started


# ---------------------------------------------------------------- the benchmark


async def measure(endpoint: str, url: str, requests: Sequence[bytes], *, args: argparse.Namespace,
                  server_pid: int, pids: dict[str, int]) -> dict[str, Any]:
    """One phase after the stack is quiet: the load, the server's and the client's CPU."""
    settled = await stack_cpu.settle(eva_only(pids), timeout=args.settle_timeout)
    own = {"server": server_pid, "client": os.getpid()}
    before = stack_cpu.sample(own)
    phase = Phase(endpoint)
    ingest = endpoint == "ingest"
    await closed_loop(phase, url, requests, connections=args.connections, duration=args.duration,
                      cap=MAX_INGEST_REQUESTS if ingest else MAX_REQUESTS, cycle=args.delivery == "same" or not ingest)
    after = stack_cpu.sample(own)
    wall = max(1e-9, after.at - before.at)
    used = {name: after.seconds[name] - before.seconds.get(name, 0.0) for name in after.seconds}
    ok = phase.statuses.get("200", 0)
    return {**phase.summary(), "settled_before_s": round(settled, 1),
            "server_cpu_ms_per_request": round(1000 * used.get("server", 0.0) / ok, 3) if ok else None,
            "server_cores": round(used.get("server", 0.0) / wall, 2),
            "client_cores": round(used.get("client", 0.0) / wall, 2)}


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    pids = {**stack_processes(args.profile), "bench client": os.getpid()}
    async with httpx.AsyncClient(timeout=30) as setup:
        hotel = await register_hotel(setup, gateway=args.gateway, simulator=args.simulator, ingest=args.ingest)
    count = 1 if args.delivery == "same" else args.max_unique
    bodies = [text_delivery(hotel, new_wamid(), "bench bare hmac") for _ in range(count)]
    servers: list[BareServer] = []
    rounds: list[dict[str, Any]] = []
    try:
        for flavour in args.bare:
            servers.append(start_bare(flavour, hotel.app_secret, ROOT / ".local" / "bench" /
                                      f"bare_hmac-{flavour}.log"))
        targets = [(server.flavour, server.url, server.process.pid) for server in servers]
        targets.append(("ingest", args.ingest, pids["webhook-ingest"]))
        for endpoint, url, _ in targets:  # warm-up: connections, the tenant's route in ingest's cache
            await closed_loop(Phase(endpoint), url, [raw_request(url, body, hotel.app_secret) for body in bodies[:50]],
                              connections=4, duration=1.0, cap=200, cycle=True)
        for number in range(args.runs):
            order = targets if number % 2 == 0 else list(reversed(targets))
            phases: dict[str, dict[str, Any]] = {}
            for endpoint, url, pid in order:
                requests = [raw_request(url, body, hotel.app_secret) for body in bodies]
                phases[endpoint] = await measure(endpoint, url, requests, args=args, server_pid=pid, pids=pids)
                sys.stderr.write(f"run {number + 1}, {endpoint}: {phases[endpoint]['ok_per_s']} requests/s "
                                 f"{phases[endpoint]['answers']}, client {phases[endpoint]['client_cores']} cores\n")
            ingest_rate = phases["ingest"]["ok_per_s"]
            rounds.append({"run": number + 1, "order": [endpoint for endpoint, _, _ in order], "phases": phases,
                           "ratio_ingest_to": {flavour: round(ingest_rate / phases[flavour]["ok_per_s"], 4)
                                               if phases[flavour]["ok_per_s"] else None for flavour in args.bare}})
    finally:
        for server in servers:
            stop_bare(server)

    def median(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return round(statistics.median(present), 4) if present else None

    endpoints = [endpoint for endpoint, _, _ in targets]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
        "profile": args.profile, "ingest": args.ingest, "connections": args.connections,
        "duration_s": args.duration, "delivery": args.delivery, "body_bytes": len(bodies[0]),
        "event_loop": "uvloop (uvicorn's default when installed)", "runs": rounds,
        "medians": {
            **{figure: {endpoint: median([r["phases"][endpoint][figure] for r in rounds]) for endpoint in endpoints}
               for figure in ("ok_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")},
            "ratio_ingest_to": {flavour: median([r["ratio_ingest_to"][flavour] for r in rounds])
                                for flavour in args.bare},
        },
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"{result['connections']} keep-alive connections, closed loop, {result['duration_s']:g} s per endpoint, "
             f"delivery: {result['delivery']} ({result['body_bytes']} bytes), ingest {result['ingest']}",
             f"  {'run':<4} {'endpoint':<8} {'200/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server ms/req':>13} "
             f"{'server cores':>12} {'client cores':>12}  answers"]
    for run_row in result["runs"]:
        for endpoint in run_row["order"]:
            phase = run_row["phases"][endpoint]
            lines.append(f"  {run_row['run']:<4} {endpoint:<8} {phase['ok_per_s']:>9} {phase['p50_ms']:>8} "
                         f"{phase['p99_ms']:>8} {phase['server_cpu_ms_per_request']!s:>13} "
                         f"{phase['server_cores']:>12} {phase['client_cores']:>12}  {phase['answers']}"
                         + ("  (request cap reached)" if phase["bounded_by_request_cap"] else ""))
        lines.append("       ingest / " + ", ".join(f"{flavour} {ratio}"
                                                   for flavour, ratio in run_row["ratio_ingest_to"].items()))
    medians = result["medians"]
    lines.append(f"medians over {len(result['runs'])} runs: requests/s "
                 + ", ".join(f"{endpoint} {value}" for endpoint, value in medians["ok_per_s"].items())
                 + "; server CPU ms per request "
                 + ", ".join(f"{endpoint} {value}" for endpoint, value in medians["server_cpu_ms_per_request"].items()))
    lines.append("ratio ingest / bare (median; target >= 0.25 of asgi): "
                 + ", ".join(f"{flavour} {ratio}" for flavour, ratio in medians["ratio_ingest_to"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=FLAVOURS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=PROFILES, default="dev",
                        help="the local stack (its URLs are the defaults; the benchmark waits for it to be quiet)")
    parser.add_argument("--ingest", default=None, help="default: the profile's webhook-ingest")
    parser.add_argument("--gateway", default=None, help="default: the profile's gateway (to register the hotel)")
    parser.add_argument("--simulator", default=None, help="default: the profile's simulator")
    parser.add_argument("--bare", default="asgi,fastapi,eva", help=f"bare endpoints, of {', '.join(FLAVOURS)}")
    parser.add_argument("--connections", type=int, default=32, help=f"keep-alive connections (<= {MAX_CONNECTIONS})")
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds per endpoint (<= {MAX_DURATION:g})")
    parser.add_argument("--runs", type=int, default=3, help=f"runs, medians over them (<= {MAX_RUNS})")
    parser.add_argument("--delivery", choices=("same", "unique"), default="same",
                        help="one signed delivery for every request, or each its own wamid")
    parser.add_argument("--max-unique", type=int, default=5000,
                        help=f"deliveries built with --delivery unique (<= {MAX_UNIQUE}): ingest's phase ends there")
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds to wait at most for the stack to be quiet before each phase")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    urls = profile_urls(args.profile)
    args.ingest = loopback_only(args.ingest or urls["ingest"])
    args.gateway = loopback_only(args.gateway or urls["gateway"])
    args.simulator = loopback_only(args.simulator or urls["simulator"])
    args.bare = [flavour.strip() for flavour in args.bare.split(",") if flavour.strip()]
    if not args.bare or any(flavour not in FLAVOURS for flavour in args.bare):
        raise SystemExit(f"--bare takes {', '.join(FLAVOURS)}")
    args.connections = max(1, min(args.connections, MAX_CONNECTIONS))
    args.duration = max(1.0, min(args.duration, MAX_DURATION))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.max_unique = max(1, min(args.max_unique, MAX_UNIQUE))
    args.settle_timeout = max(5.0, min(args.settle_timeout, 600.0))
    result = uvloop.run(run_all(args))
    write_result("bare_hmac", result)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
