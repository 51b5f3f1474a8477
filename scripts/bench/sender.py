"""The sender alone (issue 10): the sends per second the messaging service's sender worker keeps up (OutboundSender
with its per-number SendGovernor on Redis and its Graph calls) when nothing else of the stack is in the way, at a
number's limit (80, Meta's default: it must hold >= 76/s) and with the limit lifted (1000: the sender's own ceiling on
this machine).

    uv run --no-sync python scripts/bench/sender.py [--limits 80,1000] [--messages 3000] [--runs 3] [--idle 10]
        [--timeout 300] [--profile dev] [--json]

It uses the profile's running infrastructure (PostgreSQL, Redis, Kafka: `scripts/infra.py up --profile dev`), none of
its services:
- a scratch messaging database with the service's migrations (eva_testing.db.migrated_database), dropped at the end;
- the WhatsApp simulator as a process of its own (`python -m eva_simulator serve` on a free port; its CPU is apart
  from the sender's) without status webhooks (SIMULATOR_AUTO_STATUSES=false: the send path only);
- an outbox topic of its own on the profile's Kafka (deleted at the end) and a Redis key prefix of its own per run.
Each run:
  1. registers a number of its own on the simulator with `throughputMps` = the limit, opens the 24-hour window of
     --messages guests (POST /_sim/windows), and writes --messages text answers PENDING with their outbound_jobs rows,
     as SendMessage stores them (one transaction, app.tenant_id set), one per guest and each in a conversation of its
     own, so that neither the pair rate nor the per-conversation order holds a send back;
  2. idle: waits until the processes measured are quiet, then samples their CPU for --idle seconds;
  3. starts the real OutboundSender with its default settings (32 concurrent sends, batches of 64, the rate's 0.97
     headroom), the real SendGovernor, GraphSendClient over httpx to the simulator and a fixed sending profile; the
     sender writes its `message.status_changed` events to the outbox table only (no relay). Waits until every message
     is SENT (the database, polled every 0.25 s), then stops the sender.
Figures: elapsed (sender start -> all SENT) and overall rate; the steady rate: the median of the sends the simulator
accepted per calendar second (GET /_sim/throughput `perSecond`) without the first and the last second; the simulator's
`maxReceivedInAnySecond` (sliding) and refused sends (130429), which must stay within the limit and at 0; the mean
Graph call and governor wait as the sender's own histograms saw them; the sender's PostgreSQL transactions per message
(pg_stat_database of the scratch database, the polling's taken off); and CPU ms per sent message (utime + stime from
/proc, scripts/bench/stack_cpu.py, idle cost taken off) of the benchmark process (the sender; the polling adds a
little), the simulator, PostgreSQL (with its backends: the dev stack's own idle polling is taken off as idle cost) and
Redis. Medians over --runs per limit. Results also in .local/bench/sender.json.

Bounded: <= 10,000 messages per run, limits 1..1000, runs <= 10; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import stack_cpu
from aiokafka.admin import AIOKafkaAdminClient
from eva_common.db import create_engine, session_factory, transaction
from eva_common.kafka.admin import ensure_topics
from eva_common.redis import create_redis
from eva_events.topics import TopicSpec
from eva_simulator.client import SimulatorClient
from eva_testing.db import TestDatabase, migrated_database
from eva_testing.infra import TestInfra, free_port
from messaging_service import statuses
from messaging_service.clients import SendingProfile
from messaging_service.governor import SendGovernor
from messaging_service.graph_send import GraphSendClient
from messaging_service.metrics import GOVERNOR_WAIT, SEND_LATENCY
from messaging_service.models import OUTBOUND, Message, OutboundJob
from messaging_service.sender import OutboundSender
from prometheus_client import Histogram
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import infra  # noqa: E402  (scripts/infra.py: the profile's connection settings and its processes)

MAX_MESSAGES = 10_000
MAX_LIMIT = 1000
MAX_RUNS = 10
TARGET_SHARE = 0.95  # the bar: 76 of 80 per second
WABA_ID = "102290129340377"
API_VERSION = "v21.0"
POLL_SECONDS = 0.25
SIMULATOR = "simulator"
SENDER = "sender (benchmark process)"


@dataclass(frozen=True, slots=True)
class Bench:
    """What every run shares: the scratch database, the simulator process and the outbox topic."""

    infra: TestInfra
    database: TestDatabase
    simulator_url: str
    topic: str
    pids: dict[str, int]


class FixedProfiles:
    """The sending profile of the run's number (the tenant service's answer, without the tenant service)."""

    def __init__(self, profile: SendingProfile) -> None:
        self._profile = profile

    async def get(self, tenant_id: str) -> SendingProfile:
        return self._profile

    def forget(self, tenant_id: str) -> None:
        return None


def profile_infra(profile: str) -> TestInfra:
    env = infra.profile_env(profile)
    return TestInfra(pg_host=env["EVA_PG_HOST"], pg_port=int(env["EVA_PG_PORT"]),
                     owner_user=env["EVA_PG_OWNER_USER"], owner_password=env["EVA_PG_OWNER_PASSWORD"],
                     app_user=env["EVA_PG_APP_USER"], app_password=env["EVA_PG_APP_PASSWORD"],
                     redis_url=env["EVA_REDIS_URL"], kafka_bootstrap=env["EVA_KAFKA_BOOTSTRAP"])


def infrastructure_pids(profile: str) -> dict[str, int]:
    settings = infra.load_profile(profile)
    pids = {"postgres": infra.pg_pid(settings), "redis": infra.redis_pid(settings)}
    missing = [name for name, pid in pids.items() if pid is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} of the {profile} profile do not run "
                         f"(`python3 scripts/infra.py up --profile {profile}`)")
    return {name: pid for name, pid in pids.items() if pid is not None}


# ---------------------------------------------------------------- the simulator, a process of its own


@contextlib.contextmanager
def simulator_process(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "SIMULATOR_AUTO_STATUSES": "false", "SIMULATOR_LOG_LEVEL": "WARNING"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "eva_simulator", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the simulator exited ({process.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/_sim/config", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the simulator was not ready within 30 s; see {log}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- one run


def guest(run_tag: int, index: int) -> str:
    return f"4477{run_tag:03d}{index:05d}"


async def prepare(bench: Bench, *, tenant_id: str, phone_number_id: str, token: str, limit: int, messages: int,
                  run_tag: int) -> None:
    """The run's number on the simulator, its guests' windows, and the answers waiting in PostgreSQL."""
    async with SimulatorClient(bench.simulator_url) as sim:
        await sim.register_number(phone_number_id=phone_number_id, waba_id=WABA_ID, display_phone_number="15550783882",
                                  access_token=token, app_secret=secrets.token_hex(16), throughput_mps=limit)
        gate = asyncio.Semaphore(32)

        async def open_window(index: int) -> None:
            async with gate:
                await sim.open_window(phone_number_id=phone_number_id, wa_id=guest(run_tag, index))

        await asyncio.gather(*(open_window(index) for index in range(messages)))
    engine = create_engine(bench.database.app_url, pool_size=1)
    try:
        now = datetime.now(UTC)
        rows: list[Message] = []
        for index in range(messages):
            message_id = uuid.uuid4()
            to = guest(run_tag, index)
            text = {"body": f"Bench answer {index}: yes, breakfast is from 7 to 10."}
            body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
                    "text": text, "biz_opaque_callback_data": f"eva:{message_id}"}
            rows.append(Message(
                id=message_id, tenant_id=tenant_id, conversation_id=uuid.uuid4(), contact_id=uuid.uuid4(),
                direction=OUTBOUND, type="text", status=statuses.PENDING, content=text,
                raw={"request": body, "uploads": [], "marketing": False}, phone_number_id=phone_number_id,
                sent_at=now, sender={"kind": "user", "id": "bench-attendant", "name": "Bench"}, source="eva"))
        async with transaction(session_factory(engine), tenant_id=tenant_id) as session:
            session.add_all(rows)
            await session.flush()
            session.add_all([OutboundJob(tenant_id=tenant_id, message_id=row.id, conversation_id=row.conversation_id)
                             for row in rows])
    finally:
        await engine.dispose()
    owner = await asyncpg.connect(bench.database.owner_dsn)
    try:  # the planner's statistics, as a table that has been in use has them
        await owner.execute("ANALYZE messages; ANALYZE outbound_jobs")
    finally:
        await owner.close()


async def counts(connection: asyncpg.Connection, tenant_id: str) -> dict[str, int]:
    async with connection.transaction():
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
        rows = await connection.fetch("SELECT status, count(*) AS n FROM messages WHERE tenant_id = $1 GROUP BY status",
                                      tenant_id)
    return {str(row["status"]): int(row["n"]) for row in rows}


async def transactions(bench: Bench) -> int:
    """Transactions committed or rolled back in the scratch database so far (pg_stat_database: a backend reports
    its counts at least every second and when it exits; asked from another database, so the question adds none)."""
    connection = await asyncpg.connect(bench.infra.raw_owner_dsn("postgres"))
    try:
        value = await connection.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                                          bench.database.name)
    finally:
        await connection.close()
    return int(value or 0)


def histogram_totals(histogram: Histogram) -> tuple[float, float]:
    """(sum, count) of a histogram without labels, so far."""
    total = count = 0.0
    for metric in histogram.collect():
        for item in metric.samples:
            if item.name.endswith("_sum"):
                total = item.value
            elif item.name.endswith("_count"):
                count = item.value
    return total, count


def mean_ms_since(histogram: Histogram, before: tuple[float, float]) -> float | None:
    total, count = histogram_totals(histogram)
    return round(1000 * (total - before[0]) / (count - before[1]), 2) if count > before[1] else None


async def one_run(bench: Bench, redis: Redis, args: argparse.Namespace, *, limit: int, run_tag: int) -> dict[str, Any]:
    tenant_id = f"bench-sender-{uuid.uuid4().hex[:10]}"
    phone_number_id = str(10**14 + secrets.randbelow(9 * 10**14))
    token = "EAA" + secrets.token_urlsafe(32)
    prefix = f"bench:sender:{uuid.uuid4().hex[:10]}"
    prepared = time.monotonic()
    await prepare(bench, tenant_id=tenant_id, phone_number_id=phone_number_id, token=token, limit=limit,
                  messages=args.messages, run_tag=run_tag)
    prepare_s = time.monotonic() - prepared

    settled_s = await stack_cpu.settle(bench.pids, timeout=120)
    idle_start = stack_cpu.sample(bench.pids)
    await asyncio.sleep(args.idle)
    idle_end = stack_cpu.sample(bench.pids)

    engine = create_engine(bench.database.app_url)
    http = httpx.AsyncClient(timeout=60, follow_redirects=True)  # as the service's Graph client
    poller = await asyncpg.connect(bench.database.app_dsn)
    sender = OutboundSender(
        sessions=session_factory(engine),
        profiles=FixedProfiles(SendingProfile(
            tenant_id=tenant_id, phone_number_id=phone_number_id, access_token=token, waba_id=WABA_ID,
            display_phone_number="15550783882", coexistence=False, throughput_mps=limit, tenant_status="active",
            read_receipts="never", health="healthy")),
        graph=GraphSendClient(http=http, graph_url=bench.simulator_url, api_version=API_VERSION, timeout=15.0),
        governor=SendGovernor(redis, prefix=prefix), events_topic=bench.topic)
    latency_before, wait_before = histogram_totals(SEND_LATENCY), histogram_totals(GOVERNOR_WAIT)
    status: dict[str, int] = {}
    polls = 0
    transactions_before = await transactions(bench)
    try:
        before = stack_cpu.sample(bench.pids)
        started = time.monotonic()
        worker = asyncio.create_task(sender.run())
        deadline = started + args.timeout
        while time.monotonic() < deadline and not worker.done():
            status = await counts(poller, tenant_id)
            polls += 1
            if status.get(statuses.SENT, 0) + status.get(statuses.FAILED, 0) >= args.messages:
                break
            await asyncio.sleep(POLL_SECONDS)
        elapsed = time.monotonic() - started
        after = stack_cpu.sample(bench.pids)
        await sender.stop()
        await worker
    finally:
        await poller.close()
        await http.aclose()
        await engine.dispose()
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    await asyncio.sleep(1.5)  # the closed connections' backends report their counts as they exit
    sender_transactions = await transactions(bench) - transactions_before - polls
    async with SimulatorClient(bench.simulator_url) as sim:
        throughput = await sim.throughput(phone_number_id=phone_number_id)
    sent = status.get(statuses.SENT, 0)
    charge = stack_cpu.charged(idle=(idle_start, idle_end), run=(before, after), units=sent)
    per_second = [int(bucket["accepted"]) for bucket in throughput.get("perSecond", [])][1:-1]
    return {
        "limit_mps": limit, "messages": args.messages, "statuses": status, "sent": sent,
        "complete": sent == args.messages, "prepare_s": round(prepare_s, 1), "settled_after_s": round(settled_s, 1),
        "elapsed_s": round(elapsed, 2), "sent_per_s_overall": round(sent / elapsed, 1) if elapsed else 0.0,
        "sent_per_s_steady": statistics.median(per_second) if per_second else None,
        "accepted_per_s_min_max": [min(per_second, default=0), max(per_second, default=0)],
        "steady_seconds": len(per_second),
        "meta_received": throughput.get("received"), "meta_rejected_130429": throughput.get("rejected"),
        "meta_max_received_in_any_second": throughput.get("maxReceivedInAnySecond"),
        "pg_transactions_per_sent": round(sender_transactions / sent, 2) if sent else None,
        "graph_call_mean_ms": mean_ms_since(SEND_LATENCY, latency_before),
        "governor_wait_mean_ms": mean_ms_since(GOVERNOR_WAIT, wait_before),
        "cpu_ms_per_sent": {name: round(ms, 2) for name, ms in charge.per_unit_ms.items()},
        "cpu_ms_per_sent_without_simulator": round(sum(ms for name, ms in charge.per_unit_ms.items()
                                                       if name != SIMULATOR), 2),
        "cores_during_run": {name: round(cores, 3) for name, cores in charge.run_cores.items()},
        "cores_idle": {name: round(cores, 3) for name, cores in charge.idle_cores.items()},
        "cpu_window_s": round(charge.run_seconds, 1),
    }


# ---------------------------------------------------------------- figures


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Callable[[dict[str, Any]], Any]) -> float | None:
        return stack_cpu.median_of(rows, get)

    def per_process(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda row: row["cpu_ms_per_sent"].get(name)

    names = sorted({name for row in rows for name in row["cpu_ms_per_sent"]})
    return {
        "runs": len(rows),
        "sent_per_s_steady": med(lambda r: r["sent_per_s_steady"]),
        "sent_per_s_overall": med(lambda r: r["sent_per_s_overall"]),
        "elapsed_s": med(lambda r: r["elapsed_s"]),
        "meta_max_received_in_any_second_max": max((r["meta_max_received_in_any_second"] or 0) for r in rows),
        "meta_rejected_130429_total": sum((r["meta_rejected_130429"] or 0) for r in rows),
        "pg_transactions_per_sent": med(lambda r: r["pg_transactions_per_sent"]),
        "graph_call_mean_ms": med(lambda r: r["graph_call_mean_ms"]),
        "governor_wait_mean_ms": med(lambda r: r["governor_wait_mean_ms"]),
        "cpu_ms_per_sent_without_simulator": med(lambda r: r["cpu_ms_per_sent_without_simulator"]),
        "cpu_ms_per_sent": {name: med(per_process(name)) for name in names},
        "holds_target": all(r["complete"] for r in rows) and (med(lambda r: r["sent_per_s_steady"]) or 0)
        >= TARGET_SHARE * rows[0]["limit_mps"],
    }


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    test_infra = profile_infra(args.profile)
    pids = infrastructure_pids(args.profile)
    topic = f"bench.sender.{uuid.uuid4().hex[:8]}"
    port = free_port()
    results: list[dict[str, Any]] = []
    redis = create_redis(test_infra.redis_url)
    await ensure_topics(test_infra.kafka_bootstrap, [TopicSpec(topic, 3, 4 * 1024 * 1024)])
    try:
        with simulator_process(port, ROOT / ".local" / "bench" / "sender-simulator.log") as simulator:
            async with migrated_database(test_infra, ROOT / "services" / "messaging", "bench_sender") as database:
                bench = Bench(infra=test_infra, database=database, simulator_url=f"http://127.0.0.1:{port}",
                              topic=topic,
                              pids={SENDER: os.getpid(), SIMULATOR: simulator.pid, **pids})
                run_tag = 0
                for limit in args.limits:
                    for number in range(args.runs):
                        run_tag += 1
                        row = await one_run(bench, redis, args, limit=limit, run_tag=run_tag)
                        row["run"] = number + 1
                        results.append(row)
                        sys.stderr.write(
                            f"limit {limit}/s, run {number + 1}: {row['sent']} SENT in {row['elapsed_s']} s, "
                            f"{row['sent_per_s_steady']}/s steady, max in a second "
                            f"{row['meta_max_received_in_any_second']}, 130429 {row['meta_rejected_130429']}, "
                            f"CPU {row['cpu_ms_per_sent']} ms/message\n")
    finally:
        await redis.aclose()
        admin = AIOKafkaAdminClient(bootstrap_servers=test_infra.kafka_bootstrap, request_timeout_ms=15000)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
        "profile": args.profile, "messages": args.messages, "runs": results,
        "medians": {str(limit): medians([r for r in results if r["limit_mps"] == limit]) for limit in args.limits},
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, load average {', '.join(f'{x:.2f}' for x in result['load_average'])}; "
             f"{result['messages']} messages per run, the {result['profile']} profile's infrastructure"]
    for row in result["runs"]:
        lines += [
            f"limit {row['limit_mps']}/s, run {row['run']}: {row['statuses']} in {row['elapsed_s']} s "
            f"({row['sent_per_s_overall']}/s overall); accepted per second: median {row['sent_per_s_steady']} "
            f"min/max {row['accepted_per_s_min_max']} over {row['steady_seconds']} s; maxReceivedInAnySecond "
            f"{row['meta_max_received_in_any_second']}, 130429 {row['meta_rejected_130429']}",
            f"  Graph call mean {row['graph_call_mean_ms']} ms, governor wait mean {row['governor_wait_mean_ms']} ms, "
            f"PostgreSQL transactions per message {row['pg_transactions_per_sent']}; "
            f"CPU ms per sent message: " + ", ".join(f"{name} {ms}" for name, ms in row["cpu_ms_per_sent"].items())
            + f" (without the simulator {row['cpu_ms_per_sent_without_simulator']}; window {row['cpu_window_s']} s, "
            f"cores {row['cores_during_run']})",
        ]
    for limit, summary in result["medians"].items():
        lines.append(f"medians over {summary['runs']} runs, limit {limit}/s: "
                     + json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(infra.PROFILE_PORTS), default="dev",
                        help="whose running infrastructure (not the test profile while its suites run)")
    parser.add_argument("--limits", default="80,1000", help="the number's throughput limit per phase (80: Meta's)")
    parser.add_argument("--messages", type=int, default=3000, help=f"answers per run (<= {MAX_MESSAGES})")
    parser.add_argument("--runs", type=int, default=3, help="runs per limit (each with a number of its own)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampled before each run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take to send them all")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    args.limits = [int(value) for value in args.limits.split(",")]
    if any(not 1 <= limit <= MAX_LIMIT for limit in args.limits):
        raise SystemExit(f"limits must be within 1..{MAX_LIMIT}")
    args.messages = max(1, min(args.messages, MAX_MESSAGES))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    args.idle = max(1.0, args.idle)
    result = asyncio.run(run_all(args))
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    out = ROOT / ".local" / "bench" / "sender.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
