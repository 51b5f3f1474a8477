"""Answers to guests (issue 10): POST /api/messages -> `message:new` and `message:status` SENT at an attendant's socket,
the sustained send rate under the number's throughput limit, and the stack's CPU per message.

    uv run --no-sync python scripts/bench/outbound.py [--limits 80,1000] [--rates 80,400] [--duration 30] [--runs 3]
        [--guests 500] [--gateway URL] [--simulator http://127.0.0.1:3010] [--ingest http://127.0.0.1:3002]
        [--profile dev] [--no-status-webhooks] [--json]

Each run registers a hotel of its own (POST /auth/register; its number on the simulator's /_sim/numbers and the same
credentials through PUT /api/tenant/whatsapp, both with `throughputMps` when the limit is not Meta's default 80), lets
--guests guests write first (POST /_sim/guest-messages: each opens its 24-hour window and its conversation; spreading
the answers over many guests keeps the pair rate, a burst of 45 then one per 6 s per guest, out of the way), connects
the hotel's admin with the browser's client (socket.io-client@4 under Node, scripts/bench/js/pipeline_client.js, as
scripts/bench/realtime.py does), then:
  1. idle: waits until the stack is quiet (below 0.45 cores for 5 s, where the idle stack uses 0.2–0.3: the guests'
     messages, or an earlier run's backlog, worked through), then samples the CPU time of every process of the
     stack (scripts/bench/stack_cpu.py) for --duration seconds;
  2. load: POSTs text answers at --rate per second for --duration seconds (open loop: each at its scheduled time,
     whatever the answers do), round robin over the guests' conversations, while probing the same gateway's bare
     GET /healthz at 10/s (the baseline of the same run);
  3. drain: waits until every accepted answer reached SENT and READ at the socket (bounded by --drain-timeout; SENT
     only with --no-status-webhooks, which turns the simulator's status webhooks off for the run), then
     samples the CPU again: CPU ms per sent message = (run - idle cost for the run's length) / messages SENT.
Per message (this machine's clock): t0 POST sent, t1 its 201, `message:new` and `message:status` SENT at the client.
The achieved rate is the SENT statuses at the client from 5 s after the first POST to the last POST, per second; the
simulator's GET /_sim/throughput gives what Meta received per second and `maxReceivedInAnySecond` (sliding), which
must stay within the limit.

The gateway's edge limits (EVA_RATE_LIMIT_USER_PER_MINUTE 300, EVA_RATE_LIMIT_TENANT_PER_MINUTE 3,000: 50/s per
hotel) are below a number's 80/s, so by default the benchmark starts a gateway of its own on --bench-gateway-port
(3021) with the stack's configuration and those two limits raised, posts and listens there, and stops it at the end;
--gateway URL uses a running gateway instead (its limits apply). The stack's processes (`scripts/stack.py ps`), that
gateway, the simulator and the benchmark's own processes are sampled; the simulator and the client stand for Meta and
the browsers and are shown apart from Eva's total.

Bounded: rate <= 1,000/s, duration <= 120 s, <= 10,000 messages per run (a starter plan's monthly quota, guests
included), guests <= 2,000, runs <= 10; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import stack_cpu
from ingest import WABA_ID, loopback_only
from realtime import JS, RatePhase, ensure_node_client, now_ms, percentile, probe_healthz, stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import stack  # noqa: E402  (scripts/stack.py: the stack's processes and their configuration)

MAX_RATE = 1000
MAX_DURATION = 120.0
MAX_MESSAGES = 10_000
MAX_GUESTS = 2_000
MAX_RUNS = 10
MAX_IN_FLIGHT = 2048
DEFAULT_LIMIT = 80  # Meta's default throughput of a number (messages per second)
STEADY_AFTER_S = 5.0
BENCH_LIMIT_PER_MINUTE = 1_000_000
OWN = ("simulator", "bench client", "socket client")  # Meta and the browser: not Eva's processes


@dataclass
class Hotel:
    access_token: str
    phone_number_id: str
    limit: int


@dataclass
class Answer:
    index: int
    scheduled: float  # ms since the epoch
    t0: float = 0.0
    t1: float | None = None
    status: int | None = None
    message_id: str | None = None
    error: str | None = None


@dataclass
class Run:
    limit: int
    rate: float
    duration: float
    answers: list[Answer] = field(default_factory=list)
    offered_until: float = 0.0  # ms since the epoch, the last POST
    probe: RatePhase = field(default_factory=lambda: RatePhase(rate=0.0, duration=0.0))


# ---------------------------------------------------------------- the benchmark's gateway


def start_gateway(profile: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A gateway process with the stack's own configuration and the edge limits raised, on `port`."""
    local = stack.Stack(profile)
    item = next(d for d in local.deployables() if d.name == "gateway" and d.replica == 0)
    item = dataclasses.replace(item, http_port=port)
    env = stack.deployable_env(local, item, stack.load_secrets(local))
    env["EVA_RATE_LIMIT_USER_PER_MINUTE"] = env["EVA_RATE_LIMIT_TENANT_PER_MINUTE"] = str(BENCH_LIMIT_PER_MINUTE)
    with socket.socket() as probe:  # a gateway left behind by an interrupted run would answer in this one's place
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken (an earlier benchmark's gateway?); stop it or pass "
                             "--bench-gateway-port")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(stack.command_for(item), cwd=ROOT, env=env, stdout=out,  # noqa: S603
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the benchmark's gateway exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return process
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    stop_gateway(process)
    raise SystemExit(f"the benchmark's gateway was not ready within 60 s; see {log}")


def stop_gateway(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- a hotel and its guests


async def register_hotel(http: httpx.AsyncClient, *, gateway: str, simulator: str, ingest: str,
                         limit: int) -> Hotel:
    response = await http.post(f"{gateway}/auth/register", json={
        "tenantName": f"Bench Outbound {uuid.uuid4().hex[:6]}", "name": "Bench Admin",
        "email": f"bench-out-{uuid.uuid4().hex[:8]}@hotel.test", "password": "correct horse battery staple"})
    response.raise_for_status()
    hotel = Hotel(access_token=response.json()["accessToken"],
                  phone_number_id=str(10**14 + secrets.randbelow(9 * 10**14)), limit=limit)
    wa_token, app_secret = "EAA" + secrets.token_urlsafe(32), secrets.token_hex(16)
    throughput = {} if limit == DEFAULT_LIMIT else {"throughputMps": limit}
    (await http.post(f"{simulator}/_sim/numbers", json={
        "phoneNumberId": hotel.phone_number_id, "wabaId": WABA_ID, "displayPhoneNumber": "15550783881",
        "accessToken": wa_token, "appSecret": app_secret, "webhookUrl": f"{ingest}/webhooks/whatsapp",
        **throughput})).raise_for_status()
    (await http.put(f"{gateway}/api/tenant/whatsapp", headers={"Authorization": f"Bearer {hotel.access_token}"},
                    json={"phoneNumberId": hotel.phone_number_id, "wabaId": WABA_ID, "accessToken": wa_token,
                          "appSecret": app_secret, "verifyToken": secrets.token_urlsafe(16), **throughput},
                    )).raise_for_status()
    return hotel


async def guests_write(http: httpx.AsyncClient, *, simulator: str, hotel: Hotel, guests: int) -> None:
    """Each guest writes once (the simulator signs and posts the webhook; the 24-hour window opens)."""
    limit = asyncio.Semaphore(16)

    async def one(index: int) -> None:
        async with limit:
            response = await http.post(f"{simulator}/_sim/guest-messages", json={
                "phoneNumberId": hotel.phone_number_id, "from": f"1650777{index:04d}",
                "name": f"Guest {index}", "text": f"Hello from guest {index}"})
            response.raise_for_status()
            if not response.json().get("delivered"):
                raise SystemExit(f"guest {index}'s message was not delivered: {response.text[:300]}")

    await asyncio.gather(*(one(index) for index in range(guests)))


async def conversation_ids(http: httpx.AsyncClient, *, gateway: str, hotel: Hotel, guests: int,
                           timeout: float = 180.0) -> list[str]:
    """The guests' conversations, once every one of them is stored (messaging works through the deliveries)."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found, cursor = [], None
        while True:
            params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await http.get(f"{gateway}/api/conversations", params=params,
                                      headers={"Authorization": f"Bearer {hotel.access_token}"})
            response.raise_for_status()
            page = response.json()
            found += [item["id"] for item in page["items"]]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        if len(found) >= guests:
            return found
        await asyncio.sleep(1.0)
    raise SystemExit(f"only {len(found)} of {guests} guests' conversations were stored within {timeout:g} s")


# ---------------------------------------------------------------- the attendant's socket


class Outbox:
    """The Node socket.io-client@4 process and the `message:new` / `message:status` arrivals it reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.new: dict[str, float] = {}
        self.status: dict[tuple[str, str], float] = {}
        self.new_by_wamid: dict[str, float] = {}  # guests' messages, by wamid
        self.disconnects: list[str] = []
        self.stopping = False
        self.changed = asyncio.Event()
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, node: str, gateway: str, token: str, max_seconds: int) -> Outbox:
        process = await asyncio.create_subprocess_exec(
            node, str(JS / "pipeline_client.js"), gateway, str(max_seconds),
            env={**os.environ, "EVA_ACCESS_TOKEN": token},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        outbox = cls(process)
        await asyncio.wait_for(asyncio.shield(outbox._ready), timeout=15)
        return outbox

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            kind = line.get("type")
            if kind == "new":
                if isinstance(line.get("id"), str):
                    self.new.setdefault(line["id"], float(line["t"]))
                if isinstance(line.get("wamid"), str) and line.get("direction") == "inbound":
                    self.new_by_wamid.setdefault(line["wamid"], float(line["t"]))
                self.changed.set()
            elif kind == "status" and isinstance(line.get("id"), str):
                self.status.setdefault((line["id"], str(line.get("status"))), float(line["t"]))
                self.changed.set()
            elif kind == "ready" and not self._ready.done():
                self._ready.set_result(None)
            elif kind == "error" and not self._ready.done():
                self._ready.set_exception(RuntimeError(f"socket refused: {line.get('message')}"))
            elif kind == "disconnect" and not self.stopping:
                self.disconnects.append(str(line.get("reason")))

    async def wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
        return True

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


# ---------------------------------------------------------------- the load


async def open_loop(http: aiohttp.ClientSession, *, gateway: str, hotel: Hotel, conversations: list[str],
                    run: Run) -> None:
    """rate x duration answers, the i-th at start + i / rate, round robin over the conversations."""
    loop = asyncio.get_running_loop()
    total = min(MAX_MESSAGES, int(run.rate * run.duration))
    url = f"{gateway}/api/messages"
    headers = {"Authorization": f"Bearer {hotel.access_token}", "Content-Type": "application/json"}
    tasks: set[asyncio.Task[None]] = set()

    async def send(answer: Answer, body: bytes) -> None:
        answer.t0 = now_ms()
        try:
            async with http.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                answer.t1 = now_ms()
                answer.status = response.status
                if response.status == 201:
                    answer.message_id = json.loads(payload)["id"]
        except (aiohttp.ClientError, TimeoutError) as error:
            answer.error = type(error).__name__

    start = loop.time() + 0.2
    wall_start = now_ms() + 200
    for index in range(total):
        offset = index / run.rate
        await asyncio.sleep(max(0.0, start + offset - loop.time()))
        answer = Answer(index=index, scheduled=wall_start + offset * 1000)
        run.answers.append(answer)
        body = json.dumps({"conversationId": conversations[index % len(conversations)], "type": "text",
                           "text": {"body": f"Bench answer {index}"}}).encode()
        task = asyncio.create_task(send(answer, body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    run.offered_until = now_ms()
    await asyncio.gather(*tasks)


async def one_run(args: argparse.Namespace, *, limit: int, rate: float, node: str, gateway: str,
                  pids: dict[str, int]) -> dict[str, Any]:
    run = Run(limit=limit, rate=rate, duration=args.duration)
    async with (httpx.AsyncClient(timeout=30) as setup, httpx.AsyncClient(timeout=10) as probe,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
                                      timeout=aiohttp.ClientTimeout(total=120)) as http):
        hotel = await register_hotel(setup, gateway=gateway, simulator=args.simulator, ingest=args.ingest,
                                     limit=limit)
        prepared = time.monotonic()
        await guests_write(setup, simulator=args.simulator, hotel=hotel, guests=args.guests)
        conversations = await conversation_ids(setup, gateway=gateway, hotel=hotel, guests=args.guests)
        prepare_s = time.monotonic() - prepared
        outbox = await Outbox.start(node, gateway, hotel.access_token,
                                    int(args.duration * 2 + args.drain_timeout + 120))
        pids = {**pids, "socket client": outbox.process.pid}
        try:
            # the guests' messages (and an earlier run's backlog) settle in the consumers downstream
            settled_s = await stack_cpu.settle({k: v for k, v in pids.items() if k not in OWN})
            idle_start = stack_cpu.sample(pids)
            await asyncio.sleep(args.duration)
            idle_end = stack_cpu.sample(pids)
            stop = asyncio.Event()
            prober = asyncio.create_task(probe_healthz(probe, gateway, run.probe, stop))
            before = stack_cpu.sample(pids)
            await open_loop(http, gateway=gateway, hotel=hotel, conversations=conversations, run=run)
            accepted = [a.message_id for a in run.answers if a.message_id]
            last = "READ" if args.status_webhooks else "SENT"
            drained = await outbox.wait_for(
                lambda: all((mid, last) in outbox.status and (mid, "SENT") in outbox.status for mid in accepted),
                args.drain_timeout)
            after = stack_cpu.sample(pids)
            stop.set()
            await prober
        finally:
            await outbox.stop()
        throughput = (await setup.get(f"{args.simulator}/_sim/throughput",
                                      params={"phoneNumberId": hotel.phone_number_id})).json()
    sent = sum(1 for mid in accepted if (mid, "SENT") in outbox.status)
    charge = stack_cpu.charged(idle=(idle_start, idle_end), run=(before, after), units=sent)
    return summarize(run, outbox, throughput, charge, drained=drained, prepare_s=prepare_s, settled_s=settled_s)


# ---------------------------------------------------------------- figures


def summarize(run: Run, outbox: Outbox, throughput: dict[str, Any], charge: stack_cpu.Charge, *, drained: bool,
              prepare_s: float, settled_s: float) -> dict[str, Any]:
    answers: dict[str, int] = {}
    to_answer, to_new, to_sent, to_read, lag = [], [], [], [], []
    for answer in run.answers:
        key = str(answer.status) if answer.status is not None else f"error:{answer.error}"
        answers[key] = answers.get(key, 0) + 1
        lag.append(answer.t0 - answer.scheduled)
        if answer.t1 is not None:
            to_answer.append(answer.t1 - answer.t0)
        mid = answer.message_id
        if mid is None:
            continue
        if mid in outbox.new:
            to_new.append(outbox.new[mid] - answer.t0)
        if (mid, "SENT") in outbox.status:
            to_sent.append(outbox.status[(mid, "SENT")] - answer.t0)
        if (mid, "READ") in outbox.status:
            to_read.append(outbox.status[(mid, "READ")] - answer.t0)
    accepted = [a for a in run.answers if a.message_id]
    first_post = min((a.t0 for a in run.answers), default=0.0)
    steady_from = first_post + STEADY_AFTER_S * 1000
    steady_s = max(1e-9, (run.offered_until - steady_from) / 1000)
    sent_times = sorted(outbox.status[(a.message_id, "SENT")] for a in accepted
                        if a.message_id and (a.message_id, "SENT") in outbox.status)
    steady_sent = sum(1 for t in sent_times if steady_from <= t <= run.offered_until)
    window = (int(steady_from // 1000) + 1, int(run.offered_until // 1000) - 1)  # whole calendar seconds
    at_meta = [int(bucket["received"]) for bucket in throughput.get("perSecond", [])
               if window[0] <= int(bucket["second"]) <= window[1]]
    eva = {name: ms for name, ms in charge.per_unit_ms.items() if name not in OWN}
    healthz_p50 = percentile(run.probe.healthz_ms, 0.5)
    return {
        "limit_mps": run.limit, "offered_rate": run.rate, "duration_s": run.duration, "prepare_s": round(prepare_s, 1),
        "settled_after_s": round(settled_s, 1),
        "posted": len(run.answers), "answers": dict(sorted(answers.items())), "sent": len(sent_times),
        "drained": drained, "disconnects": outbox.disconnects,
        "send_lag_ms": stats(lag), "post_answer_ms": stats(to_answer),
        "post_to_message_new_ms": stats(to_new), "post_to_sent_ms": stats(to_sent), "post_to_read_ms": stats(to_read),
        "sent_per_s_steady": round(steady_sent / steady_s, 1),
        "sent_per_s_overall": round(len(sent_times) / max(1e-9, (sent_times[-1] - first_post) / 1000), 1)
        if sent_times else 0.0,
        "meta_received_per_s": {"median": statistics.median(at_meta) if at_meta else None,
                                "min": min(at_meta, default=None), "seconds": len(at_meta)},
        "meta_max_received_in_any_second": throughput.get("maxReceivedInAnySecond"),
        "meta_rejected_130429": throughput.get("rejected"),
        "healthz_ms": stats(run.probe.healthz_ms), "healthz_errors": run.probe.healthz_errors,
        "ratio_message_new_to_healthz_p50": round(percentile(to_new, 0.5) / healthz_p50, 1)
        if to_new and run.probe.healthz_ms else None,
        "cpu_ms_per_sent": {name: round(ms, 2) for name, ms in sorted(charge.per_unit_ms.items())},
        "cpu_ms_per_sent_eva_total": round(sum(eva.values()), 2),
        "cores_during_run": {name: round(c, 3) for name, c in sorted(charge.run_cores.items())},
        "cores_idle": {name: round(c, 3) for name, c in sorted(charge.idle_cores.items())},
        "cpu_window_s": round(charge.run_seconds, 1),
    }


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Callable[[dict[str, Any]], Any]) -> float | None:
        return stack_cpu.median_of(rows, get)

    def per_process(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda row: row["cpu_ms_per_sent"].get(name)

    names = sorted({name for row in rows for name in row["cpu_ms_per_sent"]})
    return {
        "runs": len(rows),
        "sent_per_s_steady": med(lambda r: r["sent_per_s_steady"]),
        "post_answer_p50_ms": med(lambda r: r["post_answer_ms"]["p50"]),
        "post_to_message_new_p50_ms": med(lambda r: r["post_to_message_new_ms"]["p50"]),
        "post_to_message_new_p99_ms": med(lambda r: r["post_to_message_new_ms"]["p99"]),
        "post_to_sent_p50_ms": med(lambda r: r["post_to_sent_ms"]["p50"]),
        "post_to_sent_p99_ms": med(lambda r: r["post_to_sent_ms"]["p99"]),
        "healthz_p50_ms": med(lambda r: r["healthz_ms"]["p50"]),
        "ratio_message_new_to_healthz_p50": med(lambda r: r["ratio_message_new_to_healthz_p50"]),
        "meta_max_received_in_any_second_max": max((r["meta_max_received_in_any_second"] or 0) for r in rows),
        "cpu_ms_per_sent_eva_total": med(lambda r: r["cpu_ms_per_sent_eva_total"]),
        "cpu_ms_per_sent": {name: med(per_process(name)) for name in names},
    }


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    node = ensure_node_client()
    pids = stack_cpu.process_pids(args.profile)
    if "messaging" not in pids:
        raise SystemExit(f"the {args.profile} stack does not run (`make up` first; `make ps` shows it)")
    gateway_process = None
    gateway = args.gateway
    if gateway is None:
        gateway_process = start_gateway(args.profile, args.bench_gateway_port, ROOT / ".local" / "bench" /
                                        "outbound-gateway.log")
        gateway = f"http://127.0.0.1:{args.bench_gateway_port}"
        pids["gateway (bench)"] = gateway_process.pid
    pids["bench client"] = os.getpid()
    results: list[dict[str, Any]] = []
    try:
        for limit, rate in zip(args.limits, args.rates, strict=True):
            for number in range(args.runs):
                row = await one_run(args, limit=limit, rate=rate, node=node, gateway=gateway, pids=pids)
                row["run"] = number + 1
                results.append(row)
                sys.stderr.write(f"limit {limit}/s, offered {rate:g}/s, run {number + 1}: "
                                 f"SENT {row['sent_per_s_steady']}/s steady, POST->message:new p50 "
                                 f"{row['post_to_message_new_ms']['p50']} ms, POST->SENT p50 "
                                 f"{row['post_to_sent_ms']['p50']} ms, CPU {row['cpu_ms_per_sent_eva_total']} "
                                 f"ms/message\n")
    finally:
        if gateway_process is not None:
            stop_gateway(gateway_process)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
        "gateway": gateway, "guests": args.guests, "status_webhooks": args.status_webhooks, "runs": results,
        "medians": {f"{limit}/{rate:g}": medians([r for r in results if r["limit_mps"] == limit
                                                   and r["offered_rate"] == rate])
                    for limit, rate in zip(args.limits, args.rates, strict=True)},
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"posting to {result['gateway']}, {result['guests']} guests per run"]
    for row in result["runs"]:
        lines += [
            f"limit {row['limit_mps']}/s, offered {row['offered_rate']:g}/s x {row['duration_s']:g} s, run "
            f"{row['run']}: posted {row['posted']} {row['answers']}, SENT {row['sent']} (drained: {row['drained']}), "
            f"send lag p99 {row['send_lag_ms']['p99']} ms, disconnects {row['disconnects'] or 'none'}",
            f"  SENT/s steady {row['sent_per_s_steady']} (overall {row['sent_per_s_overall']}); at Meta per second "
            f"median {row['meta_received_per_s']['median']} min {row['meta_received_per_s']['min']}, "
            f"maxReceivedInAnySecond {row['meta_max_received_in_any_second']}, 130429 "
            f"{row['meta_rejected_130429']}",
            f"  POST answer p50/p99 {row['post_answer_ms']['p50']}/{row['post_answer_ms']['p99']} ms; "
            f"-> message:new {row['post_to_message_new_ms']['p50']}/{row['post_to_message_new_ms']['p99']} ms; "
            f"-> SENT {row['post_to_sent_ms']['p50']}/{row['post_to_sent_ms']['p99']} ms; "
            f"-> READ {row['post_to_read_ms']['p50']}/{row['post_to_read_ms']['p99']} ms",
            f"  GET /healthz meanwhile p50/p99 {row['healthz_ms']['p50']}/{row['healthz_ms']['p99']} ms; "
            f"message:new p50 / healthz p50 = x{row['ratio_message_new_to_healthz_p50']}",
            f"  CPU ms per sent message: Eva + infrastructure {row['cpu_ms_per_sent_eva_total']}; "
            + ", ".join(f"{name} {ms}" for name, ms in row["cpu_ms_per_sent"].items())
            + f" (window {row['cpu_window_s']} s)",
        ]
    for key, summary in result["medians"].items():
        lines.append(f"medians over {summary['runs']} runs, limit/offered {key}: "
                     + json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=None, help="post to this running gateway (its edge limits apply)")
    parser.add_argument("--bench-gateway-port", type=int, default=3021)
    parser.add_argument("--simulator", default="http://127.0.0.1:3010")
    parser.add_argument("--ingest", default="http://127.0.0.1:3002")
    parser.add_argument("--profile", choices=stack.PROFILES, default="dev")
    parser.add_argument("--limits", default=f"{DEFAULT_LIMIT},1000",
                        help="the number's throughput limit per phase (80: Meta's default)")
    parser.add_argument("--rates", default="80,400", help=f"offered answers per second per phase (<= {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=30.0, help=f"seconds of load per run (<= {MAX_DURATION:g})")
    parser.add_argument("--runs", type=int, default=3, help="runs per phase (each with a hotel of its own)")
    parser.add_argument("--guests", type=int, default=500, help="distinct guests, each of whom wrote first")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--no-status-webhooks", dest="status_webhooks", action="store_false",
                        help="the simulator sends no status webhooks meanwhile (POST /_sim/config autoStatuses, put "
                             "back at the end): the send path's own cost, without Meta's sent/delivered/read")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    if args.gateway is not None:
        args.gateway = loopback_only(args.gateway)
    args.simulator, args.ingest = loopback_only(args.simulator), loopback_only(args.ingest)
    args.limits = [int(value) for value in args.limits.split(",")]
    args.rates = [float(value) for value in args.rates.split(",")]
    if len(args.limits) != len(args.rates):
        raise SystemExit("--limits and --rates name the same phases")
    if any(rate <= 0 or rate > MAX_RATE for rate in args.rates):
        raise SystemExit(f"rates must be within (0, {MAX_RATE}]")
    args.duration = max(5.0, min(args.duration, MAX_DURATION))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.guests = max(1, min(args.guests, MAX_GUESTS))
    if any(rate * args.duration + args.guests > MAX_MESSAGES for rate in args.rates):
        raise SystemExit(f"rate x duration + guests must stay within {MAX_MESSAGES} (the plan's monthly quota)")
    if not args.status_webhooks:
        httpx.post(f"{args.simulator}/_sim/config", json={"autoStatuses": False}).raise_for_status()
    try:
        result = asyncio.run(run_all(args))
    finally:
        if not args.status_webhooks:
            httpx.post(f"{args.simulator}/_sim/config", json={"autoStatuses": True}).raise_for_status()
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    out = ROOT / ".local" / "bench" / "outbound.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
