"""Meta's status webhooks (issue 11): their cost and latency, and what a flood of them does to a hotel's guests.

    uv run --no-sync python scripts/bench/statuses.py [--rates 20,50,100] [--duration 10] [--runs 1] [--idle 15]
        [--sequence sent,delivered,read] [--mixed-statuses 3000] [--mixed-rate 100] [--guest-rate 5]
        [--guests 100] [--send-concurrency 8] [--profile dev] [--gateway URL] [--ingest URL] [--simulator URL] [--json]

A status webhook (`statuses[]`: sent, delivered, read for a message the hotel sent) takes the inbound path: ingest
verifies and publishes it, messaging applies it (forward only) and its outbox announces `message.status_changed`,
realtime emits `message:status` to the hotel's sockets. The benchmark:
  1. registers a hotel of its own (as scripts/bench/ingest.py: its app secret signs the webhooks) with a gateway of
     its own whose edge limits are raised (outbound.start_gateway, as scripts/bench/outbound.py does; --gateway URL
     uses a running one instead), and turns the simulator's automatic status webhooks off for that number only (a
     status rule with an empty sequence, POST /_sim/status-rules);
  2. lets --guests guests write (POST /_sim/guest-messages: each opens its 24-hour window and its conversation),
     connects the hotel's admin with the browser's client (socket.io-client@4 under Node,
     scripts/bench/js/pipeline_client.js), POSTs as many text answers as the phases need (POST /api/messages,
     --send-concurrency at a time, round robin over the conversations) and waits until every one is SENT at the
     socket; their wamids come from the simulator (GET /_sim/sent-messages);
  3. per run: waits until the stack is quiet and samples --idle seconds of idle CPU (scripts/bench/stack_cpu.py); then
     for each rate: POSTs signed status webhooks to ingest's /webhooks/whatsapp at that rate for --duration seconds
     (open loop), each built exactly as the simulator builds it (eva_simulator.statuses.build_status: `conversation`
     and `pricing` on sent and delivered, read bare), one status per delivery, the --sequence of each message in
     turn with about a second between a message's first and last status (one second's worth of messages gets its
     `sent`, then its `delivered`, then its `read`); waits until every status that moves a message forward reached
     the socket as `message:status` (a `sent` after the sender's own SENT moves nothing and is not announced), then
     until the stack is quiet, and samples the CPU again;
  4. the mixed case, once at the end: the hotel's guests write at --guest-rate alone for --mixed-baseline seconds,
     then --mixed-statuses statuses arrive at --mixed-rate while the guests keep writing at --guest-rate: each guest
     message's webhook -> `message:new` (p50/p99), alone and during the flood, and whether each guest's messages
     reached the socket in the order they were posted.

Per status: webhook POST -> `message:status` at the client (delivered and read; per status and together; a status
whose message had already reached a later one at the socket moves nothing and is counted apart as superseded). Drain:
statuses accepted per second from the first POST to the last `message:status` (overall), and the median of
`message:status` events per calendar second (steady, as scripts/bench/realtime.py counts `message:new`). CPU ms per
status, per process = (its CPU from the first POST until drained and quiet - its idle rate x that window) / status
webhooks accepted (200), every status counted (`sent` too); "Eva + infrastructure" adds the stack's processes and the
benchmark's gateway; the simulator, the benchmark's own process and the Node client are shown apart.

Bounded: rates <= 500/s, duration <= 120 s, <= 5,000 answers sent, --mixed-statuses <= 6,000, --guest-rate <= 50/s,
runs <= 5; loopback only. Results also in .local/bench/statuses.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import outbound
import stack_cpu
from eva_simulator import payloads
from eva_simulator.signing import meta_body
from eva_simulator.state import SentMessage
from eva_simulator.statuses import PlannedStatus, build_status
from ingest import WABA_ID, Hotel, loopback_only, new_wamid, register_hotel
from realtime import (
    MAX_IN_FLIGHT,
    PROFILES,
    Sent,
    bench_gateway_port,
    cpu_figures,
    cpu_medians,
    cpu_table,
    delivery,
    drain_rates,
    ensure_node_client,
    eva_only,
    idle_cpu,
    post_on_schedule,
    profile_urls,
    require_accepted,
    stack_processes,
    stats,
    write_result,
)

MAX_RATE = 500
MAX_DURATION = 120.0
MAX_ANSWERS = 5_000
MAX_MIXED = 6_000
MAX_GUEST_RATE = 50.0
MAX_RUNS = 5
DISPLAY_NUMBER = "15550783881"
KINDS = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Target:
    """An answer the hotel sent (SENT), whose statuses the benchmark delivers."""

    message_id: str
    wamid: str
    wa_id: str
    request: dict[str, Any]


@dataclass
class StatusSent(Sent):
    kind: str = ""
    message_id: str = ""

    @property
    def announced(self) -> bool:
        """Whether the status moves the message forward (after the sender's SENT: delivered and read do)."""
        return self.kind != "sent"


@dataclass
class GuestSent(Sent):
    guest: str = ""


def settled(status: dict[tuple[str, str], float], item: StatusSent) -> bool:
    """Whether the status reached the socket, or a later one of its message did (then it moves nothing any more:
    statuses only go forward)."""
    later = KINDS[KINDS.index(item.kind):]
    return any((item.message_id, kind.upper()) in status for kind in later)


def all_settled(listener: Listener, sent: Sequence[StatusSent]) -> bool:
    return all(settled(listener.status, item) for item in sent if item.status == 200 and item.announced)


# ---------------------------------------------------------------- the attendant's socket


# scripts/bench/js/pipeline_client.js: `message:new` by message id and, for guests' messages, by wamid too;
# `message:status` by (message id, status)
Listener = outbound.Outbox


# ---------------------------------------------------------------- the answers whose statuses arrive


def guest_of(index: int) -> str:
    """The wa_id of guest `index`, as outbound.guests_write makes them write."""
    return f"1650777{index:04d}"


async def post_answers(http: aiohttp.ClientSession, *, gateway: str, token: str, conversations: Sequence[str],
                       count: int, concurrency: int) -> tuple[dict[int, str], Counter[str]]:
    """`count` text answers through POST /api/messages, `concurrency` at a time (closed loop: the stack's own pace,
    so none waits past the gateway's deadline), round robin over the conversations; an answer refused with 5xx is
    posted again (at most 3 times) with its Idempotency-Key. Returns the message id per answer index, and the
    answers by status."""
    url = f"{gateway}/api/messages"
    accepted: dict[int, str] = {}
    answers: Counter[str] = Counter()
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            body = json.dumps({"conversationId": conversations[index % len(conversations)], "type": "text",
                               "text": {"body": f"Bench answer {index}"}}).encode()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": str(uuid.uuid4())}
            for _ in range(3):
                try:
                    async with http.post(url, data=body, headers=headers) as response:
                        payload = await response.read()
                        answers[str(response.status)] += 1
                        if response.status == 201:
                            accepted[index] = json.loads(payload)["id"]
                        if response.status < 500:
                            break
                except (aiohttp.ClientError, TimeoutError) as error:
                    answers[f"error:{type(error).__name__}"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, answers


async def send_answers(setup: httpx.AsyncClient, http: aiohttp.ClientSession, args: argparse.Namespace, *,
                       hotel: Hotel, listener: Listener, count: int) -> tuple[list[Target], dict[str, Any]]:
    """`count` text answers SENT (the simulator's status webhooks off for the number), and their wamids."""
    started = time.monotonic()
    (await setup.post(f"{args.simulator}/_sim/status-rules", json={
        "phoneNumberId": hotel.phone_number_id, "sequence": [], "times": 2 * count + 100})).raise_for_status()
    sender = outbound.Hotel(access_token=hotel.access_token, phone_number_id=hotel.phone_number_id,
                            limit=outbound.DEFAULT_LIMIT)
    await outbound.guests_write(setup, simulator=args.simulator, hotel=sender, guests=args.guests)
    conversations = await outbound.conversation_ids(setup, gateway=args.gateway, hotel=sender, guests=args.guests)
    guests_s = time.monotonic() - started
    accepted, answers = await post_answers(http, gateway=args.gateway, token=hotel.access_token,
                                           conversations=conversations, count=count,
                                           concurrency=args.send_concurrency)
    drained = await listener.wait_for(
        lambda: all((mid, "SENT") in listener.status for mid in accepted.values()), args.drain_timeout)
    items = (await setup.get(f"{args.simulator}/_sim/sent-messages",
                             params={"phoneNumberId": hotel.phone_number_id})).json()["items"]
    by_body = {str(((item.get("request") or {}).get("text") or {}).get("body")): item for item in items}
    targets = []
    for index, message_id in sorted(accepted.items()):
        item = by_body.get(f"Bench answer {index}")
        if item is not None and (message_id, "SENT") in listener.status:
            targets.append(Target(message_id=message_id, wamid=str(item["wamid"]), wa_id=str(item["waId"]),
                                  request=dict(item["request"])))
    return targets, {"answers_posted": count, "answers": dict(sorted(answers.items())), "sent": len(targets),
                     "all_sent": drained, "guests_s": round(guests_s, 1),
                     "seconds": round(time.monotonic() - started, 1)}


def status_body(hotel: Hotel, target: Target, kind: str) -> bytes:
    """One status webhook for the target, built as the simulator's StatusEmitter builds it, serialized like Meta."""
    number = payloads.Business(waba_id=WABA_ID, phone_number_id=hotel.phone_number_id,
                               display_phone_number=DISPLAY_NUMBER)
    now = time.time()
    message = SentMessage(wamid=target.wamid, phone_number_id=hotel.phone_number_id, to=target.wa_id,
                          wa_id=target.wa_id, type="text", request=target.request, accepted_at=now, window_open=True)
    status = build_status(message, PlannedStatus(status=kind, delay=0.0), conversation_id=conversation_id(target),
                          with_pricing=kind in ("sent", "delivered"), now=now)
    return meta_body(payloads.status_delivery(number, [status]))


def conversation_id(target: Target) -> str:
    """Meta's conversation id of the target's statuses (one per message here, stable across its statuses)."""
    return target.message_id.replace("-", "")[:32]


def status_schedule(hotel: Hotel, targets: Sequence[Target], *, rate: float, sequence: Sequence[str],
                    start: float = 0.0) -> list[tuple[float, bytes, Sent]]:
    """Each target's statuses in `sequence` order, at `rate` per second from `start`: a block of one second's worth
    of targets gets its first status, then its second, ..., so a message's statuses are about a second apart."""
    block = max(1, round(rate / len(sequence)))
    schedule: list[tuple[float, bytes, Sent]] = []
    for first in range(0, len(targets), block):
        for kind in sequence:
            for target in targets[first:first + block]:
                sent = StatusSent(wamid=target.wamid, scheduled=0.0, kind=kind, message_id=target.message_id)
                schedule.append((start + len(schedule) / rate, status_body(hotel, target, kind), sent))
    return schedule


def guest_schedule(hotel: Hotel, *, rate: float, duration: float, guests: int,
                   label: str) -> list[tuple[float, bytes, Sent]]:
    """Guests' text messages at `rate` for `duration` seconds, round robin over the guests who wrote first."""
    schedule: list[tuple[float, bytes, Sent]] = []
    for index in range(int(rate * duration)):
        guest = guest_of(index % guests)
        sent = GuestSent(wamid=new_wamid(), scheduled=0.0, guest=guest)
        schedule.append((index / rate, delivery(hotel, wamid=sent.wamid, guest=guest, body=f"{label} {index}"), sent))
    return schedule


# ---------------------------------------------------------------- figures


def status_figures(sent: Sequence[StatusSent], listener: Listener) -> dict[str, Any]:
    answers = Counter(str(s.status) if s.status is not None else f"error:{s.error}" for s in sent)
    by_kind: dict[str, list[float]] = {}
    arrivals: list[float] = []
    missing = superseded = 0
    for item in sent:
        if item.status != 200 or not item.announced:
            continue
        seen = listener.status.get((item.message_id, item.kind.upper()))
        if seen is None:
            if settled(listener.status, item):
                superseded += 1
            else:
                missing += 1
            continue
        by_kind.setdefault(item.kind, []).append(seen - item.t0)
        arrivals.append(seen)
    accepted = sum(1 for item in sent if item.status == 200)
    first_post = min((item.t0 for item in sent if item.t0), default=0.0)
    everything = [value for values in by_kind.values() for value in values]
    drain = drain_rates(first_post, arrivals)
    span = drain["first_post_to_last_s"]
    return {
        "statuses": len(sent), "accepted": accepted, "answers": dict(sorted(answers.items())),
        "announced_expected": sum(1 for item in sent if item.status == 200 and item.announced),
        "announced_missing": missing, "superseded_by_a_later_status": superseded,
        "send_lag_ms": stats([item.t0 - item.scheduled for item in sent]),
        "answer_ms": stats([item.t1 - item.t0 for item in sent if item.t1 is not None]),
        "webhook_to_message_status_ms": stats(everything),
        "by_status_ms": {kind: stats(values) for kind, values in by_kind.items()},
        "drain": {**drain, "statuses_per_s_overall": round(accepted / span, 1) if span else None},
    }


def guest_figures(sent: Sequence[GuestSent], listener: Listener) -> dict[str, Any]:
    """Webhook -> message:new of guests' messages, and how many arrived out of their guest's posting order."""
    answers = Counter(str(s.status) if s.status is not None else f"error:{s.error}" for s in sent)
    latencies = [listener.new_by_wamid[s.wamid] - s.t0 for s in sent
                 if s.status == 200 and s.wamid in listener.new_by_wamid]
    out_of_order = 0
    last_seen: dict[str, float] = {}
    for item in sorted((s for s in sent if s.status == 200 and s.wamid in listener.new_by_wamid),
                       key=lambda s: s.t0):
        seen = listener.new_by_wamid[item.wamid]
        if seen < last_seen.get(item.guest, 0.0):
            out_of_order += 1
        last_seen[item.guest] = max(seen, last_seen.get(item.guest, 0.0))
    return {"messages": len(sent), "answers": dict(sorted(answers.items())), "reached_client": len(latencies),
            "webhook_to_message_new_ms": stats(latencies), "out_of_guest_order": out_of_order}


# ---------------------------------------------------------------- the phases


async def status_phase(http: aiohttp.ClientSession, args: argparse.Namespace, *, hotel: Hotel, listener: Listener,
                       targets: Sequence[Target], rate: float, pids: dict[str, int],
                       idle: tuple[stack_cpu.Sample, stack_cpu.Sample]) -> dict[str, Any]:
    schedule = status_schedule(hotel, targets, rate=rate, sequence=args.sequence)
    sent = [item for _, _, item in schedule if isinstance(item, StatusSent)]
    before = stack_cpu.sample(pids)
    seconds = await post_on_schedule(http, f"{args.ingest}/webhooks/whatsapp", hotel.app_secret, schedule)
    require_accepted(sent, f"status webhooks at {rate:g}/s")
    drained = await listener.wait_for(lambda: all_settled(listener, sent), args.drain_timeout)
    quiet_s = await stack_cpu.settle(eva_only(pids), timeout=args.settle_timeout)
    after = stack_cpu.sample(pids)
    figures = status_figures(sent, listener)
    cpu = cpu_figures(stack_cpu.charged(idle=idle, run=(before, after), units=figures["accepted"]))
    sys.stderr.write(f"statuses at {rate:g}/s: {figures['accepted']} accepted, webhook -> message:status p50 "
                     f"{figures['webhook_to_message_status_ms']['p50']} ms; CPU {cpu['eva_total_ms']} ms per status\n")
    return {"rate": rate, "duration_s": round(len(schedule) / rate, 1), "messages": len(schedule) // len(args.sequence),
            "achieved_rate": round(len(schedule) / seconds, 1) if seconds else None, "drained": drained,
            "settled_after_drain_s": round(quiet_s, 1), **figures, "cpu_ms_per_status": cpu}


async def mixed_phase(http: aiohttp.ClientSession, args: argparse.Namespace, *, hotel: Hotel, listener: Listener,
                      targets: Sequence[Target], pids: dict[str, int]) -> dict[str, Any]:
    """The hotel's guests alone, then the same guests during a flood of the hotel's statuses."""
    url = f"{args.ingest}/webhooks/whatsapp"
    await stack_cpu.settle(eva_only(pids), timeout=args.settle_timeout)
    alone = guest_schedule(hotel, rate=args.guest_rate, duration=args.mixed_baseline, guests=args.guests,
                           label="guest alone")
    await post_on_schedule(http, url, hotel.app_secret, alone)
    alone_sent = [item for _, _, item in alone if isinstance(item, GuestSent)]
    require_accepted(alone_sent, "guest messages")
    await listener.wait_for(lambda: all(s.wamid in listener.new_by_wamid for s in alone_sent if s.status == 200),
                            args.drain_timeout)
    await stack_cpu.settle(eva_only(pids), timeout=args.settle_timeout)
    statuses = status_schedule(hotel, targets, rate=args.mixed_rate, sequence=args.sequence)
    duration = len(statuses) / args.mixed_rate
    guests = guest_schedule(hotel, rate=args.guest_rate, duration=duration, guests=args.guests, label="guest mixed")
    merged = sorted([*statuses, *guests], key=lambda item: item[0])
    await post_on_schedule(http, url, hotel.app_secret, merged)
    status_sent = [item for _, _, item in statuses if isinstance(item, StatusSent)]
    guest_sent = [item for _, _, item in guests if isinstance(item, GuestSent)]
    drained = await listener.wait_for(
        lambda: all_settled(listener, status_sent)
        and all(s.wamid in listener.new_by_wamid for s in guest_sent if s.status == 200), args.drain_timeout)
    figures = {"statuses": len(statuses), "status_rate": args.mixed_rate, "guest_rate": args.guest_rate,
               "duration_s": round(duration, 1), "drained": drained,
               "guests_alone": guest_figures(alone_sent, listener),
               "guests_during_statuses": guest_figures(guest_sent, listener),
               "status_path": status_figures(status_sent, listener)}
    during = figures["guests_during_statuses"]["webhook_to_message_new_ms"]
    sys.stderr.write(f"mixed: guests' webhook -> message:new p50 {during['p50']} ms p99 {during['p99']} ms during "
                     f"{len(statuses)} statuses at {args.mixed_rate:g}/s\n")
    return figures


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    node = ensure_node_client()
    pids = {**stack_processes(args.profile), "bench client": os.getpid()}
    per_run = sum(math.ceil(int(rate * args.duration) / len(args.sequence)) for rate in args.rates)
    mixed = math.ceil(args.mixed_statuses / len(args.sequence)) if args.mixed_statuses else 0
    needed = per_run * args.runs + mixed
    if needed > MAX_ANSWERS:
        raise SystemExit(f"the phases need {needed} answers sent (> {MAX_ANSWERS}): fewer rates, runs or seconds")
    gateway_process = None
    if args.gateway is None:
        port = args.bench_gateway_port or bench_gateway_port(args.profile)
        gateway_process = outbound.start_gateway(args.profile, port, outbound.ROOT / ".local" / "bench" /
                                                 "statuses-gateway.log")
        args.gateway = f"http://127.0.0.1:{port}"
        pids["gateway (bench)"] = gateway_process.pid
    runs: list[dict[str, Any]] = []
    mixed_result: dict[str, Any] | None = None
    try:
        async with (httpx.AsyncClient(timeout=30) as setup,
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
                                          timeout=aiohttp.ClientTimeout(total=120)) as http):
            hotel = await register_hotel(setup, gateway=args.gateway, simulator=args.simulator, ingest=args.ingest)
            listener = await Listener.start(node, args.gateway, hotel.access_token, 3600)
            pids["socket client"] = listener.process.pid
            try:
                targets, prepared = await send_answers(setup, http, args, hotel=hotel, listener=listener,
                                                       count=needed)
                sys.stderr.write(f"prepared: {prepared}\n")
                if len(targets) < needed:
                    raise SystemExit(f"only {len(targets)} of {needed} answers were SENT: {prepared}")
                next_target = 0
                for number in range(args.runs):
                    idle, quiet_after = await idle_cpu(pids, args.idle, settle_timeout=args.settle_timeout)
                    phases = []
                    for rate in args.rates:
                        count = math.ceil(int(rate * args.duration) / len(args.sequence))
                        phase = await status_phase(http, args, hotel=hotel, listener=listener,
                                                   targets=targets[next_target:next_target + count], rate=rate,
                                                   pids=pids, idle=idle)
                        next_target += count
                        phases.append(phase)
                    runs.append({"run": number + 1, "settled_before_idle_s": round(quiet_after, 1), "rates": phases})
                if mixed:
                    mixed_result = await mixed_phase(http, args, hotel=hotel, listener=listener,
                                                     targets=targets[next_target:next_target + mixed], pids=pids)
            finally:
                await listener.stop()
    finally:
        if gateway_process is not None:
            outbound.stop_gateway(gateway_process)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
        "profile": args.profile, "gateway": args.gateway, "sequence": args.sequence, "guests": args.guests,
        "idle_s": args.idle, "prepared": prepared, "runs": runs, "medians": medians(runs, args.rates),
        "mixed": mixed_result, "disconnects": listener.disconnects,
    }


def medians(runs: list[dict[str, Any]], rates: list[float]) -> list[dict[str, Any]]:
    result = []
    for index, rate in enumerate(rates):
        rows = [run["rates"][index] for run in runs]
        result.append({
            "rate": rate, "runs": len(rows),
            "webhook_to_message_status_p50_ms": stack_cpu.median_of(
                rows, lambda r: r["webhook_to_message_status_ms"]["p50"]),
            "webhook_to_message_status_p99_ms": stack_cpu.median_of(
                rows, lambda r: r["webhook_to_message_status_ms"]["p99"]),
            "statuses_per_s_overall": stack_cpu.median_of(rows, lambda r: r["drain"]["statuses_per_s_overall"]),
            "message_status_per_s_steady": stack_cpu.median_of(rows, lambda r: r["drain"]["steady_per_s"]),
            "cpu_ms_per_status": cpu_medians([{"cpu": r["cpu_ms_per_status"]} for r in rows]),
        })
    return result


def table(result: dict[str, Any]) -> str:
    prepared = result["prepared"]
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"{result['profile']} stack, gateway {result['gateway']}, statuses per message "
             f"{','.join(result['sequence'])}",
             f"prepared: {prepared['sent']} answers SENT of {prepared['answers_posted']} posted {prepared['answers']} "
             f"in {prepared['seconds']} s ({result['guests']} guests wrote first, {prepared['guests_s']} s)"]
    for run_row in result["runs"]:
        lines.append(f"run {run_row['run']} (stack quiet after {run_row['settled_before_idle_s']} s, idle CPU "
                     f"sampled {result['idle_s']:g} s):")
        for row in run_row["rates"]:
            drain, latency = row["drain"], row["webhook_to_message_status_ms"]
            lines += [
                f"  {row['rate']:g} statuses/s x {row['duration_s']:g} s ({row['messages']} messages): "
                f"{row['accepted']} of {row['statuses']} accepted {row['answers']}, achieved {row['achieved_rate']}/s, "
                f"answer p50/p99 {row['answer_ms']['p50']}/{row['answer_ms']['p99']} ms, send lag p99 "
                f"{row['send_lag_ms']['p99']} ms",
                f"    webhook -> message:status p50 {latency['p50']} ms p99 {latency['p99']} ms (n={latency['n']}; "
                + ", ".join(f"{kind} {s['p50']}/{s['p99']}" for kind, s in row["by_status_ms"].items())
                + f"); not announced within --drain-timeout {row['announced_missing']}, never announced as a "
                f"later status of the message came first {row['superseded_by_a_later_status']}",
                f"    drain: {drain['statuses_per_s_overall']} statuses/s from the first POST to the last "
                f"message:status ({drain['first_post_to_last_s']} s); message:status steady {drain['steady_per_s']}/s "
                f"(median per second over {drain['steady_seconds']} s); quiet {row['settled_after_drain_s']} s later",
            ]
        lines += cpu_table([(f"{row['rate']:g}/s", row["cpu_ms_per_status"]) for row in run_row["rates"]], "status")
    if len(result["runs"]) > 1:
        lines.append(f"medians over {len(result['runs'])} runs:")
        for row in result["medians"]:
            lines.append(f"  {row['rate']:g}/s: webhook -> message:status p50 {row['webhook_to_message_status_p50_ms']}"
                         f" ms p99 {row['webhook_to_message_status_p99_ms']} ms; {row['statuses_per_s_overall']} "
                         f"statuses/s overall")
        lines += cpu_table([(f"{row['rate']:g}/s", row["cpu_ms_per_status"]) for row in result["medians"]],
                           "status, medians")
    mixed = result["mixed"]
    if mixed:
        alone, during, path = mixed["guests_alone"], mixed["guests_during_statuses"], mixed["status_path"]
        lines += [
            f"mixed: {mixed['statuses']} statuses at {mixed['status_rate']:g}/s ({mixed['duration_s']} s) while the "
            f"hotel's guests write at {mixed['guest_rate']:g}/s (drained: {mixed['drained']})",
            f"  guests alone:            webhook -> message:new p50 {alone['webhook_to_message_new_ms']['p50']} ms "
            f"p99 {alone['webhook_to_message_new_ms']['p99']} ms ({alone['reached_client']} of {alone['messages']}, "
            f"out of order {alone['out_of_guest_order']})",
            f"  guests during statuses:  webhook -> message:new p50 {during['webhook_to_message_new_ms']['p50']} ms "
            f"p99 {during['webhook_to_message_new_ms']['p99']} ms ({during['reached_client']} of "
            f"{during['messages']} {during['answers']}, out of order {during['out_of_guest_order']})",
            f"  the statuses meanwhile:  webhook -> message:status p50 "
            f"{path['webhook_to_message_status_ms']['p50']} ms p99 {path['webhook_to_message_status_ms']['p99']} ms; "
            f"{path['drain']['statuses_per_s_overall']} statuses/s overall; answers {path['answers']}; never "
            f"announced as a later status came first {path['superseded_by_a_later_status']}, not announced "
            f"{path['announced_missing']}",
        ]
    lines.append(f"socket disconnects: {result['disconnects'] or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="dev",
                        help="the local stack whose processes are sampled, and whose URLs are the defaults")
    parser.add_argument("--gateway", default=None, help="use this running gateway (its edge limits apply)")
    parser.add_argument("--bench-gateway-port", type=int, default=None,
                        help="the benchmark's own gateway (default: the profile's gateway port + 20)")
    parser.add_argument("--ingest", default=None, help="default: the profile's webhook-ingest")
    parser.add_argument("--simulator", default=None, help="default: the profile's simulator")
    parser.add_argument("--rates", default="20,50,100", help=f"status webhooks per second (<= {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds per rate (<= {MAX_DURATION:g})")
    parser.add_argument("--sequence", default=",".join(KINDS), help="the statuses of each message, in order")
    parser.add_argument("--runs", type=int, default=1, help=f"runs of the rates, medians per rate (<= {MAX_RUNS})")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle CPU sampled before each run")
    parser.add_argument("--mixed-statuses", type=int, default=3000,
                        help=f"statuses of the mixed case (0: skip it; <= {MAX_MIXED})")
    parser.add_argument("--mixed-rate", type=float, default=100.0, help="statuses per second in the mixed case")
    parser.add_argument("--guest-rate", type=float, default=5.0, help="guest messages per second in the mixed case")
    parser.add_argument("--mixed-baseline", type=float, default=10.0,
                        help="seconds of guest messages alone before the mixed case")
    parser.add_argument("--guests", type=int, default=100, help="guests who write first (their conversations)")
    parser.add_argument("--send-concurrency", type=int, default=8,
                        help="answers POSTed at a time while preparing (closed loop)")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    urls = profile_urls(args.profile)
    if args.gateway is not None:
        args.gateway = loopback_only(args.gateway)
    args.ingest = loopback_only(args.ingest or urls["ingest"])
    args.simulator = loopback_only(args.simulator or urls["simulator"])
    args.rates = [float(value) for value in args.rates.split(",")]
    if any(rate <= 0 or rate > MAX_RATE for rate in args.rates) or not 0 < args.mixed_rate <= MAX_RATE:
        raise SystemExit(f"rates must be within (0, {MAX_RATE}]")
    args.sequence = [kind.strip() for kind in args.sequence.split(",") if kind.strip()]
    if not args.sequence or any(kind not in KINDS for kind in args.sequence):
        raise SystemExit(f"--sequence takes {', '.join(KINDS)}")
    args.duration = max(1.0, min(args.duration, MAX_DURATION))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.idle = max(5.0, min(args.idle, 120.0))
    args.mixed_statuses = max(0, min(args.mixed_statuses, MAX_MIXED))
    args.guest_rate = max(0.1, min(args.guest_rate, MAX_GUEST_RATE))
    args.mixed_baseline = max(1.0, min(args.mixed_baseline, MAX_DURATION))
    args.guests = max(1, min(args.guests, outbound.MAX_GUESTS))
    args.send_concurrency = max(1, min(args.send_concurrency, 32))
    result = asyncio.run(run_all(args))
    write_result("statuses", result)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
