"""Guest message -> live inbox latency (issue 5): webhook POST to `message:new` at a socket.io v4 client, per hop.

    uv run python scripts/bench/realtime.py [--rates 50,200] [--duration 20] [--guests 50]
        [--gateway http://127.0.0.1:3001] [--ingest http://127.0.0.1:3002] [--simulator http://127.0.0.1:3010]
        [--kafka 127.0.0.1:19092] [--json]

It registers its own hotel (as scripts/bench/ingest.py does), connects one attendant with the browser's own client
(socket.io-client@4 under Node, websocket transport, handshake auth; scripts/bench/js/inbox_client.js, installed
with `npm ci` when missing) and, for each rate, sends signed guest text deliveries to ingest's /webhooks/whatsapp
on a fixed schedule for --duration seconds (open loop: a slow answer never delays the next send), signed with the
hotel's app secret exactly like the simulator (eva_simulator.signing), from --guests different guest numbers (so the
conversations spread over the partitions, as a real hotel's do). Between rates it waits for the pipeline to drain.
Meanwhile it probes the gateway's GET /healthz at 10/s: the baseline of the same run on the same machine.

Per message (wall clock of this machine, ms):
  t0  the POST is sent                       t1  its 200 is received
  t2  wa.webhooks.v1 record timestamp (ingest's produce; Kafka CreateTime)
  t3  messaging.events.v1 `message.received` record timestamp for the wamid (the outbox relay's publish)
  t4  `message:new` for the wamid at the Node client
Hops (they add up to t4 - t0): ingest t2 - t0 (answer time t1 - t0 shown too), Kafka + processing t3 - t2
(messaging consumes, stores, outbox relay publishes), emit t4 - t3 (realtime consumes, seq in Redis, Redis manager,
gateway, client). The topics are read afterwards with aiokafka from the record timestamps (no consumer group).

Bounded: rate <= 500/s, duration <= 120 s, <= 30,000 messages per rate, <= 4,096 requests in flight (a request
waiting for a free connection counts in its t1 - t0); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from eva_events.topics import MESSAGING_EVENTS, TOPICS, WA_WEBHOOKS
from eva_simulator.signing import SIGNATURE_HEADER, meta_body, signature
from ingest import WABA_ID, Hotel, loopback_only, new_wamid, register_hotel

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
MAX_RATE = 500
MAX_DURATION = 120.0
MAX_MESSAGES = 30_000
MAX_IN_FLIGHT = 4096
PROBE_RATE = 10.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(fraction * len(ordered)))) - 1]


def stats(values: list[float]) -> dict[str, float | int]:
    return {"n": len(values), "p50": round(percentile(values, 0.5), 1), "p99": round(percentile(values, 0.99), 1),
            "mean": round(sum(values) / len(values), 1) if values else float("nan")}


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


async def open_loop(http: aiohttp.ClientSession, hotel: Hotel, *, ingest: str, phase: RatePhase, guests: int,
                    label: str) -> None:
    """Sends rate x duration deliveries, the i-th at start + i / rate, whatever the answers do (aiohttp: its
    connection queue stays cheap when thousands of requests wait, where httpx's pool degrades quadratically)."""
    loop = asyncio.get_running_loop()
    total = min(MAX_MESSAGES, int(phase.rate * phase.duration))
    url = f"{ingest}/webhooks/whatsapp"
    tasks: set[asyncio.Task[None]] = set()

    async def send(sent: Sent, body: bytes) -> None:
        sent.t0 = now_ms()
        try:
            async with http.post(url, data=body, headers={
                    "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, hotel.app_secret)},
                    ) as response:
                await response.read()
                sent.t1 = now_ms()
                sent.status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            sent.error = type(error).__name__

    start = loop.time() + 0.2
    wall_start = now_ms() + 200
    for index in range(total):
        offset = index / phase.rate
        delay = start + offset - loop.time()
        await asyncio.sleep(max(0.0, delay))  # behind schedule: still yield, so answers are read meanwhile
        wamid = new_wamid()
        sent = Sent(wamid=wamid, scheduled=wall_start + offset * 1000)
        phase.messages.append(sent)
        body = delivery(hotel, wamid=wamid, guest=f"1650555{index % guests:04d}", body=f"{label} {index}")
        task = asyncio.create_task(send(sent, body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    phase.seconds = (now_ms() - wall_start) / 1000  # the sending window: the achieved rate
    await asyncio.gather(*tasks)


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
    pickup, store_relay = [], []
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

    return {
        "rate": phase.rate, "duration_s": phase.duration, "sent": len(phase.messages),
        "achieved_rate": round(len(phase.messages) / phase.seconds, 1) if phase.seconds else 0.0,
        "accepted_per_s": round(accepted / phase.seconds, 1) if phase.seconds else 0.0,
        "answers": dict(sorted(statuses.items())), "never_seen": unseen,
        "refused_but_delivered": refused_but_delivered,
        "send_lag_ms": stats(lag),
        "webhook_to_message_new_ms": stats(total), "answer_t1_t0_ms": stats(answer),
        "hops_ms": {"ingest_t2_t0": stats(ingest_hop), "kafka_processing_t3_t2": stats(pipeline_hop),
                    "emit_t4_t3": stats(emit_hop),
                    "of_which_pickup_created_t2": stats(pickup), "of_which_store_relay_t3_created": stats(store_relay)},
        "hop_share_pct": {"ingest": share(ingest_hop), "kafka_processing": share(pipeline_hop),
                          "emit": share(emit_hop)},
        "hops_matched": len(ingest_hop),
        "healthz_ms": stats(phase.healthz_ms), "healthz_errors": phase.healthz_errors,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    gateway, ingest, simulator = (loopback_only(args.gateway), loopback_only(args.ingest),
                                  loopback_only(args.simulator))
    host = args.kafka.rsplit(":", 1)[0]
    loopback_only(f"http://{host}")
    rates = [float(rate) for rate in args.rates.split(",")]
    if any(rate <= 0 or rate > MAX_RATE for rate in rates):
        raise SystemExit(f"rates must be within (0, {MAX_RATE}]")
    duration = max(1.0, min(args.duration, MAX_DURATION))
    node = ensure_node_client()
    since_ms = int(now_ms()) - 1000
    async with (httpx.AsyncClient(timeout=30) as setup, httpx.AsyncClient(timeout=10) as probe,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
                                      timeout=aiohttp.ClientTimeout(total=120)) as http):
        hotel = await register_hotel(setup, gateway=gateway, simulator=simulator, ingest=ingest)
        max_seconds = int(len(rates) * (duration + args.drain_timeout) + 120)
        inbox = await Inbox.start(node, gateway, hotel.access_token, max_seconds)
        try:
            idle = RatePhase(rate=0.0, duration=5.0)  # the baseline with the pipeline idle
            stop = asyncio.Event()
            prober = asyncio.create_task(probe_healthz(probe, gateway, idle, stop))
            await asyncio.sleep(idle.duration)
            stop.set()
            await prober
            # warm-up: the guests' conversations exist before the measured phases
            warm = RatePhase(rate=20.0, duration=max(1.0, args.guests / 20.0))
            await open_loop(http, hotel, ingest=ingest, phase=warm, guests=args.guests, label="warm-up")
            await drain(inbox, warm, args.drain_timeout)
            phases: list[RatePhase] = []
            for rate in rates:
                phase = RatePhase(rate=rate, duration=duration)
                stop = asyncio.Event()
                prober = asyncio.create_task(probe_healthz(probe, gateway, phase, stop))
                await open_loop(http, hotel, ingest=ingest, phase=phase, guests=args.guests, label=f"rate {rate:g}")
                await drain(inbox, phase, args.drain_timeout)
                stop.set()
                await prober
                phases.append(phase)
        finally:
            await inbox.stop()
    wamids = {sent.wamid for phase in phases for sent in phase.messages}
    t2, t3, created = await kafka_times(args.kafka, since_ms, wamids, phone_number_id=hotel.phone_number_id)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "baseline_idle_healthz_ms": stats(idle.healthz_ms),
        "rates": [summarize(phase, inbox, t2, t3, created) for phase in phases],
        "client": {"duplicates": inbox.duplicates, "disconnects": inbox.disconnects},
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"gateway GET /healthz with the pipeline idle: p50 {result['baseline_idle_healthz_ms']['p50']} ms, "
             f"p99 {result['baseline_idle_healthz_ms']['p99']} ms"]
    for row in result["rates"]:
        hops, share = row["hops_ms"], row["hop_share_pct"]
        lines += [
            f"rate {row['rate']:g}/s for {row['duration_s']:g} s: sent {row['sent']} "
            f"(achieved {row['achieved_rate']}/s, accepted {row['accepted_per_s']}/s), answers {row['answers']}, "
            f"not seen at the client within --drain-timeout: {row['never_seen']}, "
            f"refused yet delivered: {row['refused_but_delivered']}, "
            f"send lag behind schedule p50/p99 "
            f"{row['send_lag_ms']['p50']}/{row['send_lag_ms']['p99']} ms",
            f"  webhook -> message:new  p50 {row['webhook_to_message_new_ms']['p50']} ms  "
            f"p99 {row['webhook_to_message_new_ms']['p99']} ms  (n={row['webhook_to_message_new_ms']['n']})",
            f"  ingest answer t1-t0     p50 {row['answer_t1_t0_ms']['p50']} ms  p99 {row['answer_t1_t0_ms']['p99']} ms",
            f"  ingest t2-t0            p50 {hops['ingest_t2_t0']['p50']} ms  p99 {hops['ingest_t2_t0']['p99']} ms"
            f"  share {share['ingest']} %",
            f"  kafka+processing t3-t2  p50 {hops['kafka_processing_t3_t2']['p50']} ms  "
            f"p99 {hops['kafka_processing_t3_t2']['p99']} ms  share {share['kafka_processing']} %",
            f"    of which to messaging's handler (createdAt-t2) p50 {hops['of_which_pickup_created_t2']['p50']} ms "
            f"p99 {hops['of_which_pickup_created_t2']['p99']} ms; store + outbox relay (t3-createdAt) "
            f"p50 {hops['of_which_store_relay_t3_created']['p50']} ms "
            f"p99 {hops['of_which_store_relay_t3_created']['p99']} ms",
            f"  emit t4-t3              p50 {hops['emit_t4_t3']['p50']} ms  p99 {hops['emit_t4_t3']['p99']} ms"
            f"  share {share['emit']} %   (hops matched for {row['hops_matched']} messages)",
            f"  gateway GET /healthz meanwhile: p50 {row['healthz_ms']['p50']} ms  p99 {row['healthz_ms']['p99']} ms"
            f"  errors {row['healthz_errors']}",
        ]
    lines.append(f"client: duplicates {result['client']['duplicates']}, "
                 f"disconnects {result['client']['disconnects'] or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:3001")
    parser.add_argument("--ingest", default="http://127.0.0.1:3002")
    parser.add_argument("--simulator", default="http://127.0.0.1:3010")
    parser.add_argument("--kafka", default="127.0.0.1:19092", help="bootstrap of the stack's Kafka (dev: 19092)")
    parser.add_argument("--rates", default="50,200", help=f"guest messages per second, comma-separated (<= {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=20.0, help=f"seconds per rate (<= {MAX_DURATION:g})")
    parser.add_argument("--guests", type=int, default=50, help="distinct guest numbers (conversations)")
    parser.add_argument("--drain-timeout", type=float, default=420.0,
                        help="seconds to wait after each rate for the accepted messages to reach the client")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    args.guests = max(1, min(args.guests, 1000))
    args.drain_timeout = max(1.0, min(args.drain_timeout, 600.0))
    result = asyncio.run(run(args))
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
