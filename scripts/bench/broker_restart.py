"""Broker restart recovery (issue 9): how long after the Kafka broker comes back a guest's message reaches the live
inbox again.

    uv run --no-sync python scripts/bench/broker_restart.py [--profile test] [--rounds 5] [--down 10]
        [--interval 0.1] [--give-up 180] [--json]

Against a running stack of the profile (`uv run --no-sync python scripts/stack.py up --profile test`, or the one the
e2e conftest starts). It registers its own hotel through the gateway (as scripts/bench/ingest.py does) and opens one
Socket.io connection as its admin. Then, each round:

  1. a guest message is sent and seen at the socket (the pipeline works before the fault);
  2. the broker is stopped like tests-e2e/test_inbound_faults.py does (SIGTERM to the pid in
     .local/<profile>/kafka/kafka.pid), kept down --down seconds, and started with `scripts/infra.py up`;
  3. "back" is the first moment the broker answers an ApiVersions request again (polled every 50 ms on a thread of
     its own while infra.py starts it; infra.py's own checks after that run on meanwhile);
  4. from then on a signed guest message goes to ingest through the simulator every --interval seconds (one attempt
     each, no retries: ingest answers 503 while it cannot produce) until a `message:new` of one of them reaches the
     socket.

Guests also keep writing (every --interval) from just before the broker is stopped until it is back, unless
--quiet-outage: so the producers (ingest's, the outbox relays') are busy at the moment the broker shuts down, which
is what broke aiokafka's idempotent producer for good before issue 9 (OutOfOrderSequenceNumber on every later
publish to a partition whose batch had expired while the stopping broker reported no leader).

Per round it prints, in seconds after "back": the first delivery ingest accepted (200), the first `message:new` at
the socket, and how long that message took from its POST to the socket. The summary gives the median and max over
the rounds. Every process of the stack must stay up (the script only stops and starts the broker); it refuses
non-loopback URLs. Stopping the broker disturbs everything else using the profile's Kafka at that time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(HERE))

import infra  # noqa: E402  (scripts/infra.py, stdlib only)
from ingest import Hotel, loopback_only, register_hotel  # noqa: E402

MAX_ROUNDS = 20


@dataclass
class Round:
    number: int
    back_at: str = ""  # wall clock (UTC) when the broker answered again, to find the moment in the services' logs
    accepted_after: float | None = None  # first 200 from ingest, seconds after the broker was back
    event_after: float | None = None  # first message:new at the socket, seconds after the broker was back
    event_latency: float | None = None  # that message's POST -> message:new
    sent: int = 0
    refused: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    outage_statuses: dict[str, int] = field(default_factory=dict)  # ingest's answers while the broker was away


class Socket:
    """One Socket.io connection of the hotel's admin, recording when each wamid's message:new arrived."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=True)
        self.arrivals: dict[str, float] = {}
        self.arrived = asyncio.Event()

        self.client.on("message:new", self._on_message)

    async def _on_message(self, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("wamid"), str):
            self.arrivals.setdefault(data["wamid"], time.monotonic())
            self.arrived.set()

    async def connect(self, gateway: str, token: str) -> None:
        await self.client.connect(gateway, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    async def first_of(self, wamids: set[str], timeout: float) -> tuple[str, float] | None:
        deadline = time.monotonic() + timeout
        while True:
            seen = [(self.arrivals[w], w) for w in wamids if w in self.arrivals]
            if seen:
                at, wamid = min(seen)
                return wamid, at
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass


async def send_guest(http: httpx.AsyncClient, simulator: str, hotel: Hotel, guest: str, text: str) -> tuple[str, int]:
    """One signed delivery through the simulator, a single attempt; returns (wamid, ingest's status or 0)."""
    response = await http.post(f"{simulator}/_sim/guest-messages", json={
        "phoneNumberId": hotel.phone_number_id, "from": guest, "name": "Bench Guest", "text": text,
        "retry": {"maxAttempts": 1, "timeout": 5.0}})
    response.raise_for_status()
    body = response.json()
    status = body["attempts"][-1]["status"] if body.get("attempts") else None
    return str(body["wamid"]), int(status or 0)


def kafka_pid(profile: str) -> int:
    path = ROOT / ".local" / profile / "kafka" / "kafka.pid"
    pid = int(path.read_text().strip())
    os.kill(pid, 0)
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()


def watch_broker(port: int, back: threading.Event, answered_at: list[float], stop: threading.Event) -> None:
    """Polls ApiVersions every 50 ms on a thread of its own (so a busy event loop cannot delay the moment seen);
    records when the broker first answers."""
    while not stop.is_set():
        if infra.kafka_api_versions(port, 0.5):
            answered_at.append(time.monotonic())
            back.set()
            return
        time.sleep(0.05)


async def restart_broker(profile: str, port: int, down_seconds: float) -> tuple[float, asyncio.Task[None]]:
    """Stops the broker, keeps it down, starts it with `infra.py up`; returns as soon as the broker answers again
    (the monotonic time it did) with the task of `infra.py up`, which goes on with its own checks meanwhile."""
    pid = kafka_pid(profile)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while alive(pid):
        if time.monotonic() > deadline:
            raise SystemExit("the broker did not stop within 90 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(down_seconds)
    back, stop = threading.Event(), threading.Event()
    answered_at: list[float] = []
    watcher = threading.Thread(target=watch_broker, args=(port, back, answered_at, stop), daemon=True)
    watcher.start()

    async def up() -> None:
        try:
            result = await asyncio.to_thread(
                subprocess.run, [sys.executable, str(ROOT / "scripts" / "infra.py"), "up", "--profile", profile],
                cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
        finally:
            stop.set()
        if result.returncode != 0:
            raise SystemExit(f"infra.py up failed:\n{result.stdout}\n{result.stderr}")

    starting = asyncio.create_task(up())
    while not back.is_set():
        if starting.done():
            await starting  # raises when it failed
            if not answered_at:
                raise SystemExit("infra.py up returned but the broker does not answer")
        await asyncio.sleep(0.02)
    return answered_at[0], starting


async def one_round(number: int, args: argparse.Namespace, http: httpx.AsyncClient, hotel: Hotel,
                    socket: Socket, port: int) -> Round:
    result = Round(number)
    guest = "1650777" + str(secrets.randbelow(10**4)).zfill(4)
    wamid, status = await send_guest(http, args.simulator, hotel, guest, f"round {number}: before the restart")
    if status != 200 or await socket.first_of({wamid}, args.give_up) is None:
        raise SystemExit(f"round {number}: the pipeline does not work before the restart (ingest {status})")

    outage = asyncio.Event()

    async def outage_traffic() -> None:
        """Guests keep writing while the broker stops and is away (ingest answers 503 meanwhile), so producers are
        busy at the moment it shuts down, as in production."""
        index = 0
        while not outage.is_set():
            with contextlib.suppress(httpx.HTTPError):
                _, status = await send_guest(http, args.simulator, hotel, guest, f"round {number} outage #{index}")
                result.outage_statuses[str(status)] = result.outage_statuses.get(str(status), 0) + 1
            index += 1
            await asyncio.sleep(args.interval)

    traffic = asyncio.create_task(outage_traffic()) if not args.quiet_outage else None
    try:
        back, starting = await restart_broker(args.profile, port, args.down)
    finally:
        outage.set()  # its last request may still be waiting for ingest's answer: it ends on its own
    result.back_at = datetime.fromtimestamp(time.time() - (time.monotonic() - back), UTC).isoformat(
        timespec="milliseconds")
    sent_at: dict[str, float] = {}
    pending: set[asyncio.Task[None]] = set()

    async def send(index: int) -> None:
        started = time.monotonic()
        try:
            wamid, status = await send_guest(http, args.simulator, hotel, guest, f"round {number} #{index}")
        except httpx.HTTPError:
            wamid, status = "", -1
        result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
        if status == 200:
            sent_at[wamid] = started
            if result.accepted_after is None:
                result.accepted_after = time.monotonic() - back
        else:
            result.refused += 1

    index = 0
    found: tuple[str, float] | None = None
    while time.monotonic() - back < args.give_up:
        task = asyncio.create_task(send(index))
        pending.add(task)
        task.add_done_callback(pending.discard)
        index += 1
        found = await socket.first_of(set(sent_at), args.interval)
        if found is not None:
            break
    result.sent = index
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    if traffic is not None:
        await traffic
    await starting
    if found is None:
        return result
    wamid, at = found
    result.event_after = at - back
    result.event_latency = at - sent_at[wamid]
    return result


def summary(rounds: list[Round]) -> dict[str, Any]:
    def column(values: list[float | None]) -> dict[str, float | int | None]:
        known = [v for v in values if v is not None]
        return {"median": round(statistics.median(known), 2) if known else None,
                "max": round(max(known), 2) if known else None,
                "missing": len(values) - len(known)}

    return {
        "rounds": len(rounds),
        "accepted_after_s": column([r.accepted_after for r in rounds]),
        "event_after_s": column([r.event_after for r in rounds]),
        "event_latency_s": column([r.event_latency for r in rounds]),
    }


def fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = infra.profile_env(args.profile)
    port = int(env["EVA_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    async with httpx.AsyncClient(timeout=30.0) as http:
        hotel = await register_hotel(http, gateway=args.gateway, simulator=args.simulator, ingest=args.ingest)
        socket = Socket()
        await socket.connect(args.gateway, hotel.access_token)
        rounds: list[Round] = []
        try:
            for number in range(1, args.rounds + 1):
                outcome = await one_round(number, args, http, hotel, socket, port)
                rounds.append(outcome)
                if not args.json:
                    sys.stdout.write(
                        f"round {number} (broker back at {outcome.back_at}): ingest accepts after "
                        f"{fmt(outcome.accepted_after)} s, message:new after "
                        f"{fmt(outcome.event_after)} s (that message took {fmt(outcome.event_latency)} s), "
                        f"{outcome.sent} sent, statuses {outcome.statuses}; during the outage "
                        f"{outcome.outage_statuses}\n")
                    sys.stdout.flush()
        finally:
            await socket.client.disconnect()
    return {"profile": args.profile, "down_seconds": args.down, "interval_seconds": args.interval,
            "per_round": [r.__dict__ for r in rounds], "summary": summary(rounds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["dev", "test"], default="test")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--down", type=float, default=10.0, help="seconds the broker stays down")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between guest messages")
    parser.add_argument("--give-up", type=float, default=180.0, help="seconds to wait for a message:new per round")
    parser.add_argument("--gateway")
    parser.add_argument("--ingest")
    parser.add_argument("--simulator")
    parser.add_argument("--quiet-outage", action="store_true",
                        help="send nothing while the broker is stopping and away (default: keep sending)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 1..{MAX_ROUNDS}")
    if args.interval < 0.02:
        parser.error("--interval must be at least 0.02 s")
    offset = 0 if args.profile == "dev" else 10_000
    args.gateway = loopback_only(args.gateway or f"http://127.0.0.1:{3001 + offset}")
    args.ingest = loopback_only(args.ingest or f"http://127.0.0.1:{3002 + offset}")
    args.simulator = loopback_only(args.simulator or f"http://127.0.0.1:{3010 + offset}")
    result = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        s = result["summary"]
        sys.stdout.write(
            f"{s['rounds']} rounds, broker down {args.down:g} s: ingest accepts after median "
            f"{fmt(s['accepted_after_s']['median'])} s / max {fmt(s['accepted_after_s']['max'])} s; message:new "
            f"after median {fmt(s['event_after_s']['median'])} s / max {fmt(s['event_after_s']['max'])} s "
            f"({s['event_after_s']['missing']} rounds never)\n")
    missing: int = result["summary"]["event_after_s"]["missing"]
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
