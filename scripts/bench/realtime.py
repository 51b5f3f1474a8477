"""Guest message -> live inbox (issues 5 and 11): webhook POST to `message:new` at a socket.io v4 client, per hop,
the drain rate, and the stack's CPU milliseconds per message per process.

    uv run --no-sync python scripts/bench/realtime.py [--rates 10,100] [--duration 20] [--guests 50] [--runs 1]
        [--idle 15] [--profile dev] [--gateway URL] [--ingest URL] [--simulator URL] [--kafka HOST:PORT] [--json]

It registers its own hotel (as scripts/bench/ingest.py does), connects one attendant with the browser's own client
(socket.io-client@4 under Node, websocket transport, handshake auth; scripts/bench/js/inbox_client.js, installed
with `npm ci` when missing), lets every guest write once (the warm-up: the conversations exist before the measured
phases) and waits until the stack is quiet. Then:
  1. idle: samples the CPU time of every process of the --profile stack (scripts/bench/stack_cpu.py: the pids from
     `scripts/stack.py ps`, PostgreSQL with its backends) for --idle seconds while probing the gateway's GET /healthz
     at 10/s (the probe runs through every phase, so its own cost is part of the idle cost taken off);
  2. for each rate: sends signed guest text deliveries to ingest's /webhooks/whatsapp on a fixed schedule for
     --duration seconds (open loop: a slow answer never delays the next send), signed with the hotel's app secret
     exactly like the simulator (eva_simulator.signing), from --guests different guest numbers (so the
     conversations spread over the partitions, as a real hotel's do); waits until every accepted message reached
     the client (the drain), then until the stack is quiet again (the consumers that follow, e.g. conversation's and
     tenant's, finish their share), and samples the CPU again.
URLs and the Kafka bootstrap default to the --profile stack's (dev: gateway :3001, ingest :3002, Kafka :19092).

Per message (wall clock of this machine, ms):
  t0  the POST is sent                       t1  its 200 is received
  t2  wa.webhooks.v1 record timestamp (ingest's produce; Kafka CreateTime)
  t3  messaging.events.v1 `message.received` record timestamp for the wamid (the outbox relay's publish)
  t4  `message:new` for the wamid at the Node client
Hops (they add up to t4 - t0): ingest t2 - t0 (answer time t1 - t0 shown too), Kafka + processing t3 - t2
(messaging consumes, stores, outbox relay publishes), emit t4 - t3 (realtime consumes, seq in Redis, Redis manager,
gateway, client). The topics are read afterwards with aiokafka from the record timestamps (no consumer group).

Drain rate: the messages that reached `message:new` per second from the first POST to the last `message:new`
(overall), and the median of `message:new` arrivals per calendar second from the first whole second after the
first POST to the last whole second before the last arrival (steady: the offered rate when the pipeline keeps up,
its capacity when a backlog builds). CPU ms per message, per process = (its CPU time from the first POST until
drained and quiet - its idle rate x that window) / messages that reached the client. "Eva + infrastructure" adds
every process of the stack (deployables, PostgreSQL, Kafka, Redis); the simulator (not on this path), the
benchmark's own process and the Node client are shown apart. --runs N repeats everything (a new hotel each run) and
prints the medians per rate (stack_cpu.median_of).

Bounded: rate <= 500/s, duration <= 120 s, <= 30,000 messages per rate, <= 4,096 requests in flight (a request
waiting for a free connection counts in its t1 - t0), runs <= 10; loopback only. Results also in
.local/bench/realtime.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from eva_events.topics import MESSAGING_EVENTS, TOPICS, WA_WEBHOOKS
from eva_simulator.signing import SIGNATURE_HEADER, meta_body, signature
from ingest import WABA_ID, Hotel, loopback_only, new_wamid, register_hotel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import infra  # noqa: E402  (scripts/infra.py: the profile's Kafka port)
import stack  # noqa: E402  (scripts/stack.py: the profile's processes and ports)

PROFILES = stack.PROFILES

if TYPE_CHECKING:  # stack_cpu imports sockets, which imports this module: stack_cpu is imported where it is used
    import stack_cpu

JS = HERE / "js"
MAX_RATE = 500
MAX_DURATION = 120.0
MAX_MESSAGES = 30_000
MAX_IN_FLIGHT = 4096
MAX_RUNS = 10
PROBE_RATE = 10.0
OWN = ("simulator", "bench client", "socket client")  # Meta and the browser: shown apart from Eva's total
PROCESS_ORDER = ("messaging", "conversation", "webhook-ingest", "tenant", "realtime", "gateway", "gateway-2",
                 "gateway (bench)", "auth", "n8n-integration", "postgres", "kafka", "redis")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(fraction * len(ordered)))) - 1]


def stats(values: list[float]) -> dict[str, float | int]:
    return {"n": len(values), "p50": round(percentile(values, 0.5), 1), "p99": round(percentile(values, 0.99), 1),
            "mean": round(sum(values) / len(values), 1) if values else float("nan")}


# ---------------------------------------------------------------- the stack of a profile


def profile_urls(profile: str) -> dict[str, str]:
    """The gateway, ingest and simulator URLs and the Kafka bootstrap of a profile's local stack."""
    local = stack.Stack(profile)
    return {"gateway": local.url("gateway"), "ingest": local.url("webhook-ingest"),
            "simulator": local.url("simulator"), "kafka": f"127.0.0.1:{infra.load_profile(profile).kafka_port}"}


def bench_gateway_port(profile: str) -> int:
    """A port for a benchmark's own gateway: the profile's gateway port + 20 (dev 3021, test 13021)."""
    return stack.Stack(profile).port("gateway") + 20


def stack_processes(profile: str) -> dict[str, int]:
    """The profile's processes by name (stack_cpu.process_pids), refusing a stack that does not run."""
    import stack_cpu

    pids = stack_cpu.process_pids(profile)
    if "messaging" not in pids:
        raise SystemExit(f"the {profile} stack does not run (`uv run --no-sync python scripts/stack.py up --profile "
                         f"{profile}`; `... ps --profile {profile}` shows it)")
    return pids


# ---------------------------------------------------------------- CPU per unit of work


async def idle_cpu(pids: Mapping[str, int], seconds: float, *,
                   settle_timeout: float) -> tuple[tuple[stack_cpu.Sample, stack_cpu.Sample], float]:
    """Waits until the stack is quiet, then samples `seconds` of idle: ((start, end), seconds waited to settle)."""
    import stack_cpu

    settled = await stack_cpu.settle(eva_only(pids), timeout=settle_timeout)
    start = stack_cpu.sample(pids)
    await asyncio.sleep(seconds)
    return (start, stack_cpu.sample(pids)), settled


def eva_only(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name not in OWN}


def cpu_figures(charge: stack_cpu.Charge) -> dict[str, Any]:
    """CPU ms per unit per process (idle taken off), Eva + infrastructure's total, cores during the run and idle."""
    return {
        "per_unit_ms": {name: round(ms, 2) for name, ms in ordered(charge.per_unit_ms).items()},
        "eva_total_ms": round(sum(eva_only(charge.per_unit_ms).values()), 2) if charge.units else None,
        "cores_during_run": {name: round(c, 3) for name, c in ordered(charge.run_cores).items()},
        "cores_idle": {name: round(c, 3) for name, c in ordered(charge.idle_cores).items()},
        "window_s": round(charge.run_seconds, 1), "units": charge.units,
    }


def ordered(values: Mapping[str, float]) -> dict[str, float]:
    """Eva's processes in PROCESS_ORDER, then any other, then the benchmark's own (OWN)."""
    rank = {name: index for index, name in enumerate(PROCESS_ORDER)}
    own = {name: index for index, name in enumerate(OWN)}
    return dict(sorted(values.items(), key=lambda item: (item[0] in own, own.get(item[0], rank.get(item[0], 99)),
                                                         item[0])))


def cpu_table(columns: Sequence[tuple[str, Mapping[str, Any]]], unit: str) -> list[str]:
    """A table of CPU ms per `unit`, a column per (heading, cpu_figures(...)), a row per process, Eva's total
    after the stack's processes and the benchmark's own processes below it."""
    if not columns:
        return []
    names = list(ordered({name: 0.0 for _, figures in columns for name in figures["per_unit_ms"]}))
    width = max(12, *(len(heading) for heading, _ in columns))
    label = max(24, *(len(name) for name in names))

    def cell(value: Any) -> str:
        return f"{value:>{width}.2f}" if isinstance(value, int | float) else f"{'-':>{width}}"

    lines = [f"  CPU ms per {unit}, idle cost taken off:",
             f"    {'process':<{label}}" + "".join(f"  {heading:>{width}}" for heading, _ in columns)]
    for name in [name for name in names if name not in OWN]:
        lines.append(f"    {name:<{label}}" + "".join(f"  {cell(f['per_unit_ms'].get(name))}" for _, f in columns))
    lines.append(f"    {'Eva + infrastructure':<{label}}" + "".join(f"  {cell(f['eva_total_ms'])}" for _, f in columns))
    for name in [name for name in names if name in OWN]:
        lines.append(f"    ({name})".ljust(label + 4) + "".join(f"  {cell(f['per_unit_ms'].get(name))}"
                                                               for _, f in columns))
    lines.append(f"    {'units, CPU window s':<{label}}" + "".join(
        f"  {str(f['units']) + ', ' + str(f['window_s']):>{width}}" for _, f in columns))
    return lines


# ---------------------------------------------------------------- drain rate


def drain_rates(first_post_ms: float, arrivals_ms: Sequence[float]) -> dict[str, Any]:
    """Arrivals per second from the first POST to the last arrival (overall), and the median of the arrivals per
    calendar second between the first whole second after the first POST and the last whole second before the last
    arrival (steady; None when fewer than 3 such seconds)."""
    if not arrivals_ms:
        return {"overall_per_s": 0.0, "steady_per_s": None, "steady_seconds": 0, "first_post_to_last_s": None}
    last = max(arrivals_ms)
    span = max(1e-9, (last - first_post_ms) / 1000)
    first_second, last_second = int(first_post_ms // 1000) + 1, int(last // 1000) - 1
    counts = Counter(int(t // 1000) for t in arrivals_ms)
    per_second = [counts.get(second, 0) for second in range(first_second, last_second + 1)]
    return {"overall_per_s": round(len(arrivals_ms) / span, 1),
            "steady_per_s": statistics.median(per_second) if len(per_second) >= 3 else None,
            "steady_seconds": len(per_second), "first_post_to_last_s": round(span, 1)}


# ---------------------------------------------------------------- the load


@dataclass
class Sent:
    wamid: str
    scheduled: float  # ms since the epoch
    t0: float = 0.0
    t1: float | None = None
    status: int | None = None
    error: str | None = None


@dataclass
class RatePhase:
    rate: float
    duration: float
    messages: list[Sent] = field(default_factory=list)
    seconds: float = 0.0
    healthz_ms: list[float] = field(default_factory=list)
    healthz_errors: int = 0
    cpu: dict[str, Any] | None = None  # cpu_figures(...) of the phase, per message that reached the client
    settled_after_s: float = 0.0


def ensure_node_client() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is required (the socket.io v4 JavaScript client runs under Node)")
    if not (JS / "node_modules" / "socket.io-client").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is required to install scripts/bench/js (npm ci --prefix scripts/bench/js)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(JS)], check=True,
                       stdout=subprocess.DEVNULL)
    return node


def delivery(hotel: Hotel, *, wamid: str, guest: str, body: str) -> bytes:
    """A Meta text delivery (reference §3.1 shape), serialized like Meta, as the simulator sends it."""
    return meta_body({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": hotel.phone_number_id},
                  "contacts": [{"profile": {"name": f"Bench Guest {guest[-3:]}"}, "wa_id": guest}],
                  "messages": [{"from": guest, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                                "text": {"body": body}}]},
        "field": "messages"}]}]})


class Inbox:
    """The Node socket.io-client@4 process and the `message:new` arrivals it reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.disconnects: list[str] = []
        self.stopping = False
        self.arrived = asyncio.Event()
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, node: str, gateway: str, token: str, max_seconds: int) -> Inbox:
        process = await asyncio.create_subprocess_exec(
            node, str(JS / "inbox_client.js"), gateway, str(max_seconds), env={**os.environ, "EVA_ACCESS_TOKEN": token},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        inbox = cls(process)
        await asyncio.wait_for(asyncio.shield(inbox._ready), timeout=15)
        return inbox

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            kind = line.get("type")
            if kind == "message" and isinstance(line.get("wamid"), str):
                if line["wamid"] in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[line["wamid"]] = float(line["t"])
                    self.arrived.set()
            elif kind == "ready" and not self._ready.done():
                self._ready.set_result(None)
            elif kind == "error" and not self._ready.done():
                self._ready.set_exception(RuntimeError(f"socket refused: {line.get('message')}"))
            elif kind == "disconnect" and not self.stopping:
                self.disconnects.append(str(line.get("reason")))

    async def stop(self) -> None:
        self.stopping = True
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


def now_ms() -> float:
    return time.time() * 1000


async def probe_healthz(http: httpx.AsyncClient, gateway: str, phase: RatePhase, stop: asyncio.Event) -> None:
    """GET /healthz of the gateway on a fixed schedule until `stop`: the same-run baseline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        t = time.perf_counter()
        try:
            response = await http.get(f"{gateway}/healthz")
        except httpx.HTTPError:
            phase.healthz_errors += 1
            return
        if response.status_code == 200:
            phase.healthz_ms.append((time.perf_counter() - t) * 1000)
        else:
            phase.healthz_errors += 1

    index = 0
    while not stop.is_set():
        delay = started + index / PROBE_RATE - loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                break
            except TimeoutError:
                pass
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    if tasks:
        await asyncio.gather(*tasks)


async def post_on_schedule(http: aiohttp.ClientSession, url: str, app_secret: str,
                           schedule: Sequence[tuple[float, bytes, Sent]]) -> float:
    """POSTs each signed body at start + its offset (seconds), whatever the answers do (open loop; aiohttp: its
    connection queue stays cheap when thousands of requests wait, where httpx's pool degrades quadratically); fills
    in each Sent's schedule, t0, t1 and answer. Returns the sending window in seconds (the achieved rate)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def send(sent: Sent, body: bytes) -> None:
        sent.t0 = now_ms()
        try:
            async with http.post(url, data=body, headers={
                    "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, app_secret)},
                    ) as response:
                await response.read()
                sent.t1 = now_ms()
                sent.status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            sent.error = type(error).__name__

    start = loop.time() + 0.2
    wall_start = now_ms() + 200
    for offset, body, sent in schedule:
        await asyncio.sleep(max(0.0, start + offset - loop.time()))  # behind schedule: still yield (answers)
        sent.scheduled = wall_start + offset * 1000
        task = asyncio.create_task(send(sent, body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    seconds = (now_ms() - wall_start) / 1000
    await asyncio.gather(*tasks)
    return seconds


def require_accepted(sent: Sequence[Sent], what: str) -> None:
    """Stops the benchmark when ingest accepted none of a phase's deliveries (the stack went away meanwhile)."""
    if sent and not any(item.status == 200 for item in sent):
        answers = Counter(str(item.status) if item.status is not None else f"error:{item.error}" for item in sent)
        raise SystemExit(f"ingest accepted none of the {len(sent)} {what}: {dict(answers)}")


def guest_number(index: int, guests: int) -> str:
    return f"1650555{index % guests:04d}"


async def open_loop(http: aiohttp.ClientSession, hotel: Hotel, *, ingest: str, phase: RatePhase, guests: int,
                    label: str) -> None:
    """Sends rate x duration guest deliveries, the i-th at start + i / rate, round robin over the guests."""
    total = min(MAX_MESSAGES, int(phase.rate * phase.duration))
    schedule: list[tuple[float, bytes, Sent]] = []
    for index in range(total):
        sent = Sent(wamid=new_wamid(), scheduled=0.0)
        schedule.append((index / phase.rate, delivery(hotel, wamid=sent.wamid, guest=guest_number(index, guests),
                                                      body=f"{label} {index}"), sent))
    phase.messages.extend(sent for _, _, sent in schedule)
    phase.seconds = await post_on_schedule(http, f"{ingest}/webhooks/whatsapp", hotel.app_secret, schedule)


async def drain(inbox: Inbox, phase: RatePhase, timeout: float) -> None:
    """Waits until every accepted message reached the client, or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    expected = {sent.wamid for sent in phase.messages if sent.status == 200}
    while not expected.issubset(inbox.arrivals):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        inbox.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbox.arrived.wait(), timeout=min(remaining, 1.0))


def wamids_of_delivery(envelope: dict[str, Any]) -> list[str]:
    payload = envelope.get("data", {}).get("payload", {})
    found: list[str] = []
    for entry in payload.get("entry", []) or []:
        for change in entry.get("changes", []) or []:
            for message in (change.get("value") or {}).get("messages", []) or []:
                if isinstance(message.get("id"), str):
                    found.append(message["id"])
    return found


async def kafka_times(bootstrap: str, since_ms: int, wamids: set[str], *, phone_number_id: str,
                      timeout: float = 60.0) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(t2, t3, created) per wamid: the record timestamps on wa.webhooks.v1 and messaging.events.v1
    (message.received), and the message's `createdAt` (set by messaging when its handler builds the row)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    t2: dict[str, float] = {}
    t3: dict[str, float] = {}
    created: dict[str, float] = {}
    try:
        partitions = [TopicPartition(spec.name, number) for spec in TOPICS
                      if spec.name in (WA_WEBHOOKS, MESSAGING_EVENTS) for number in range(spec.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        pending = set()
        for tp in partitions:
            found = starts.get(tp)
            if found is not None and found.offset < ends[tp]:
                consumer.seek(tp, found.offset)
                pending.add(tp)
        key = phone_number_id.encode()
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    if tp.topic == WA_WEBHOOKS:
                        if record.key != key or record.value is None:
                            continue
                        for wamid in wamids_of_delivery(json.loads(record.value)):
                            if wamid in wamids:
                                t2.setdefault(wamid, float(record.timestamp))
                    elif record.value is not None and b"message.received" in record.value:
                        envelope = json.loads(record.value)
                        data = envelope.get("data") or {}
                        found = data.get("wamid")
                        if envelope.get("type") == "message.received" and isinstance(found, str) and found in wamids:
                            t3.setdefault(found, float(record.timestamp))
                            stamp = data.get("createdAt")
                            if isinstance(stamp, str):
                                created.setdefault(found, datetime.fromisoformat(stamp).timestamp() * 1000)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return t2, t3, created


def summarize(phase: RatePhase, inbox: Inbox, t2: dict[str, float], t3: dict[str, float],
              created: dict[str, float]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    total, answer, ingest_hop, pipeline_hop, emit_hop, lag = [], [], [], [], [], []
    pickup, store_relay, arrivals = [], [], []
    unseen = 0
    refused_but_delivered = 0  # answered non-200 (the sender would retry) yet the message reached the inbox
    for sent in phase.messages:
        statuses[str(sent.status) if sent.status is not None else f"error:{sent.error}"] += 1
        lag.append(sent.t0 - sent.scheduled)
        if sent.status != 200 or sent.t1 is None:
            refused_but_delivered += sent.wamid in inbox.arrivals
            continue
        answer.append(sent.t1 - sent.t0)
        t4 = inbox.arrivals.get(sent.wamid)
        if t4 is None:
            unseen += 1
            continue
        arrivals.append(t4)
        total.append(t4 - sent.t0)
        a, b = t2.get(sent.wamid), t3.get(sent.wamid)
        if a is not None and b is not None:
            ingest_hop.append(a - sent.t0)
            pipeline_hop.append(b - a)
            emit_hop.append(t4 - b)
            made = created.get(sent.wamid)
            if made is not None:
                pickup.append(made - a)
                store_relay.append(b - made)
    accepted = sum(1 for sent in phase.messages if sent.status == 200)
    hop_total = sum(ingest_hop) + sum(pipeline_hop) + sum(emit_hop)

    def share(values: list[float]) -> float:
        return round(100 * sum(values) / hop_total, 1) if hop_total else float("nan")

    first_post = min((sent.t0 for sent in phase.messages if sent.t0), default=0.0)
    return {
        "rate": phase.rate, "duration_s": phase.duration, "sent": len(phase.messages),
        "achieved_rate": round(len(phase.messages) / phase.seconds, 1) if phase.seconds else 0.0,
        "accepted_per_s": round(accepted / phase.seconds, 1) if phase.seconds else 0.0,
        "answers": dict(sorted(statuses.items())), "reached_client": len(total), "never_seen": unseen,
        "refused_but_delivered": refused_but_delivered,
        "send_lag_ms": stats(lag),
        "webhook_to_message_new_ms": stats(total), "answer_t1_t0_ms": stats(answer),
        "drain": drain_rates(first_post, arrivals),
        "hops_ms": {"ingest_t2_t0": stats(ingest_hop), "kafka_processing_t3_t2": stats(pipeline_hop),
                    "emit_t4_t3": stats(emit_hop),
                    "of_which_pickup_created_t2": stats(pickup), "of_which_store_relay_t3_created": stats(store_relay)},
        "hop_share_pct": {"ingest": share(ingest_hop), "kafka_processing": share(pipeline_hop),
                          "emit": share(emit_hop)},
        "hops_matched": len(ingest_hop),
        "healthz_ms": stats(phase.healthz_ms), "healthz_errors": phase.healthz_errors,
        "cpu_ms_per_message": phase.cpu, "settled_after_drain_s": round(phase.settled_after_s, 1),
    }


async def one_run(args: argparse.Namespace, *, node: str, rates: list[float], duration: float,
                  pids: dict[str, int]) -> dict[str, Any]:
    """One hotel, its warm-up, the idle sample and every rate: the figures of each rate."""
    import stack_cpu

    since_ms = int(now_ms()) - 1000
    async with (httpx.AsyncClient(timeout=30) as setup, httpx.AsyncClient(timeout=10) as probe,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
                                      timeout=aiohttp.ClientTimeout(total=120)) as http):
        hotel = await register_hotel(setup, gateway=args.gateway, simulator=args.simulator, ingest=args.ingest)
        max_seconds = int(len(rates) * (duration + args.drain_timeout + args.settle_timeout) + args.idle + 300)
        inbox = await Inbox.start(node, args.gateway, hotel.access_token, max_seconds)
        pids = {**pids, "socket client": inbox.process.pid}
        phases: list[RatePhase] = []
        try:
            # warm-up: the guests' conversations exist before the measured phases
            warm = RatePhase(rate=20.0, duration=max(1.0, args.guests / 20.0))
            await open_loop(http, hotel, ingest=args.ingest, phase=warm, guests=args.guests, label="warm-up")
            await drain(inbox, warm, args.drain_timeout)
            # the idle cost, with the /healthz probe running (it runs through every phase: its cost is idle cost)
            idle = RatePhase(rate=0.0, duration=args.idle)
            stop = asyncio.Event()
            prober = asyncio.create_task(probe_healthz(probe, args.gateway, idle, stop))
            idle_window, settled_s = await idle_cpu(pids, args.idle, settle_timeout=args.settle_timeout)
            stop.set()
            await prober
            for rate in rates:
                phase = RatePhase(rate=rate, duration=duration)
                stop = asyncio.Event()
                prober = asyncio.create_task(probe_healthz(probe, args.gateway, phase, stop))
                before = stack_cpu.sample(pids)
                await open_loop(http, hotel, ingest=args.ingest, phase=phase, guests=args.guests,
                                label=f"rate {rate:g}")
                require_accepted(phase.messages, f"guest messages at {rate:g}/s")
                await drain(inbox, phase, args.drain_timeout)
                phase.settled_after_s = await stack_cpu.settle(eva_only(pids), timeout=args.settle_timeout)
                after = stack_cpu.sample(pids)
                stop.set()
                await prober
                reached = sum(1 for sent in phase.messages if sent.status == 200 and sent.wamid in inbox.arrivals)
                phase.cpu = cpu_figures(stack_cpu.charged(idle=idle_window, run=(before, after), units=reached))
                phases.append(phase)
                sys.stderr.write(f"rate {rate:g}/s: {reached} of {len(phase.messages)} reached the client; CPU "
                                 f"{phase.cpu['eva_total_ms']} ms per message (Eva + infrastructure)\n")
        finally:
            await inbox.stop()
    wamids = {sent.wamid for phase in phases for sent in phase.messages}
    t2, t3, created = await kafka_times(args.kafka, since_ms, wamids, phone_number_id=hotel.phone_number_id)
    return {
        "baseline_idle_healthz_ms": stats(idle.healthz_ms), "settled_before_idle_s": round(settled_s, 1),
        "rates": [summarize(phase, inbox, t2, t3, created) for phase in phases],
        "client": {"duplicates": inbox.duplicates, "disconnects": inbox.disconnects},
    }


def cpu_of(row: dict[str, Any]) -> dict[str, Any]:
    cpu: dict[str, Any] = row.get("cpu_ms_per_message") or row.get("cpu") or {}
    return cpu


def cpu_medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over runs of each process's CPU per unit and of Eva's total (cpu_figures(...) in `cpu_of`)."""
    import stack_cpu

    def per_process(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda row: cpu_of(row).get("per_unit_ms", {}).get(name)

    names = sorted({name for row in rows for name in cpu_of(row).get("per_unit_ms", {})})
    return {"per_unit_ms": {name: stack_cpu.median_of(rows, per_process(name)) for name in names},
            "eva_total_ms": stack_cpu.median_of(rows, lambda row: cpu_of(row).get("eva_total_ms")),
            "units": sum(cpu_of(row).get("units", 0) for row in rows),
            "window_s": stack_cpu.median_of(rows, lambda row: cpu_of(row).get("window_s"))}


def medians(runs: list[dict[str, Any]], rates: list[float]) -> list[dict[str, Any]]:
    """Per rate, the median over runs of the latency, drain and CPU figures."""
    import stack_cpu

    result = []
    for index, rate in enumerate(rates):
        rows = [run["rates"][index] for run in runs]
        result.append({
            "rate": rate, "runs": len(rows),
            "webhook_to_message_new_p50_ms": stack_cpu.median_of(rows, lambda r: r["webhook_to_message_new_ms"]["p50"]),
            "webhook_to_message_new_p99_ms": stack_cpu.median_of(rows, lambda r: r["webhook_to_message_new_ms"]["p99"]),
            "drain_overall_per_s": stack_cpu.median_of(rows, lambda r: r["drain"]["overall_per_s"]),
            "drain_steady_per_s": stack_cpu.median_of(rows, lambda r: r["drain"]["steady_per_s"]),
            "cpu_ms_per_message": cpu_medians(rows),
        })
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(rate) for rate in args.rates.split(",")]
    if any(rate <= 0 or rate > MAX_RATE for rate in rates):
        raise SystemExit(f"rates must be within (0, {MAX_RATE}]")
    duration = max(1.0, min(args.duration, MAX_DURATION))
    node = ensure_node_client()
    pids = {**stack_processes(args.profile), "bench client": os.getpid()}
    runs = []
    for number in range(args.runs):
        row = await one_run(args, node=node, rates=rates, duration=duration, pids=pids)
        row["run"] = number + 1
        runs.append(row)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(), "profile": args.profile, "guests": args.guests, "idle_s": args.idle,
        "runs": runs, "medians": medians(runs, rates),
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"{result['profile']} stack, {result['guests']} guests, idle CPU sampled {result['idle_s']:g} s"]
    for run_row in result["runs"]:
        lines.append(f"run {run_row['run']}: gateway GET /healthz with the pipeline idle: p50 "
                     f"{run_row['baseline_idle_healthz_ms']['p50']} ms, p99 "
                     f"{run_row['baseline_idle_healthz_ms']['p99']} ms (stack quiet after "
                     f"{run_row['settled_before_idle_s']} s)")
        for row in run_row["rates"]:
            hops, share, drained = row["hops_ms"], row["hop_share_pct"], row["drain"]
            lines += [
                f"rate {row['rate']:g}/s for {row['duration_s']:g} s: sent {row['sent']} "
                f"(achieved {row['achieved_rate']}/s, accepted {row['accepted_per_s']}/s), answers {row['answers']}, "
                f"not seen at the client within --drain-timeout: {row['never_seen']}, "
                f"refused yet delivered: {row['refused_but_delivered']}, "
                f"send lag behind schedule p50/p99 "
                f"{row['send_lag_ms']['p50']}/{row['send_lag_ms']['p99']} ms",
                f"  webhook -> message:new  p50 {row['webhook_to_message_new_ms']['p50']} ms  "
                f"p99 {row['webhook_to_message_new_ms']['p99']} ms  (n={row['webhook_to_message_new_ms']['n']})",
                f"  drain: {row['reached_client']} reached message:new, {drained['overall_per_s']}/s from the first "
                f"POST to the last message:new ({drained['first_post_to_last_s']} s); steady "
                f"{drained['steady_per_s']}/s (median per second over {drained['steady_seconds']} s)",
                f"  ingest answer t1-t0     p50 {row['answer_t1_t0_ms']['p50']} ms  "
                f"p99 {row['answer_t1_t0_ms']['p99']} ms",
                f"  ingest t2-t0            p50 {hops['ingest_t2_t0']['p50']} ms  p99 {hops['ingest_t2_t0']['p99']} ms"
                f"  share {share['ingest']} %",
                f"  kafka+processing t3-t2  p50 {hops['kafka_processing_t3_t2']['p50']} ms  "
                f"p99 {hops['kafka_processing_t3_t2']['p99']} ms  share {share['kafka_processing']} %",
                f"    of which to messaging's handler (createdAt-t2) p50 {hops['of_which_pickup_created_t2']['p50']} "
                f"ms p99 {hops['of_which_pickup_created_t2']['p99']} ms; store + outbox relay (t3-createdAt) "
                f"p50 {hops['of_which_store_relay_t3_created']['p50']} ms "
                f"p99 {hops['of_which_store_relay_t3_created']['p99']} ms",
                f"  emit t4-t3              p50 {hops['emit_t4_t3']['p50']} ms  p99 {hops['emit_t4_t3']['p99']} ms"
                f"  share {share['emit']} %   (hops matched for {row['hops_matched']} messages)",
                f"  gateway GET /healthz meanwhile: p50 {row['healthz_ms']['p50']} ms  p99 {row['healthz_ms']['p99']} "
                f"ms  errors {row['healthz_errors']}; stack quiet {row['settled_after_drain_s']} s after the drain",
            ]
        lines += cpu_table([(f"{row['rate']:g}/s", row["cpu_ms_per_message"]) for row in run_row["rates"]
                            if row["cpu_ms_per_message"]], "message")
        lines.append(f"client: duplicates {run_row['client']['duplicates']}, "
                     f"disconnects {run_row['client']['disconnects'] or 'none'}")
    if len(result["runs"]) > 1:
        lines.append(f"medians over {len(result['runs'])} runs:")
        for row in result["medians"]:
            lines.append(f"  rate {row['rate']:g}/s: webhook -> message:new p50 {row['webhook_to_message_new_p50_ms']}"
                         f" ms p99 {row['webhook_to_message_new_p99_ms']} ms; drain {row['drain_overall_per_s']}/s "
                         f"overall, {row['drain_steady_per_s']}/s steady")
        lines += cpu_table([(f"{row['rate']:g}/s", row["cpu_ms_per_message"]) for row in result["medians"]],
                           "message, medians")
    return "\n".join(lines)


def write_result(name: str, result: dict[str, Any]) -> Path:
    """The result as .local/bench/<name>.json."""
    out = ROOT / ".local" / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=stack.PROFILES, default="dev",
                        help="the local stack whose processes are sampled, and whose URLs are the defaults")
    parser.add_argument("--gateway", default=None, help="default: the profile's gateway")
    parser.add_argument("--ingest", default=None, help="default: the profile's webhook-ingest")
    parser.add_argument("--simulator", default=None, help="default: the profile's simulator")
    parser.add_argument("--kafka", default=None, help="bootstrap of the stack's Kafka (default: the profile's)")
    parser.add_argument("--rates", default="50,200", help=f"guest messages per second, comma-separated (<= {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=20.0, help=f"seconds per rate (<= {MAX_DURATION:g})")
    parser.add_argument("--guests", type=int, default=50, help="distinct guest numbers (conversations)")
    parser.add_argument("--runs", type=int, default=1, help=f"runs (a hotel each), medians per rate (<= {MAX_RUNS})")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle CPU sampled before the rates")
    parser.add_argument("--drain-timeout", type=float, default=420.0,
                        help="seconds to wait after each rate for the accepted messages to reach the client")
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds to wait at most for the stack to be quiet (before the idle sample, after drains)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    urls = profile_urls(args.profile)
    args.gateway = loopback_only(args.gateway or urls["gateway"])
    args.ingest = loopback_only(args.ingest or urls["ingest"])
    args.simulator = loopback_only(args.simulator or urls["simulator"])
    args.kafka = args.kafka or urls["kafka"]
    loopback_only(f"http://{args.kafka.rsplit(':', 1)[0]}")
    args.guests = max(1, min(args.guests, 1000))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.idle = max(5.0, min(args.idle, 120.0))
    args.drain_timeout = max(1.0, min(args.drain_timeout, 600.0))
    args.settle_timeout = max(5.0, min(args.settle_timeout, 600.0))
    result = asyncio.run(run(args))
    write_result("realtime", result)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
