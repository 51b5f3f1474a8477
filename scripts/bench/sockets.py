"""Idle authenticated sockets one gateway process holds (issue 5): memory per socket, connect rate, stability.

    uv run python scripts/bench/sockets.py [--counts 1000,5000,10000] [--hold 60] [--parallel 100]
        [--gateway http://127.0.0.1:3001] [--pid <gateway pid>] [--redis redis://127.0.0.1:16379/0] [--json]

It registers its own hotel (one admin; every socket uses that admin's access token, as the tabs of one attendant
would) and, for each count, starts scripts/bench/js/idle_sockets.js (socket.io-client@4 under Node, websocket
transport, handshake auth, each socket its own connection) with at most --parallel handshakes in flight, then holds
all of them for --hold seconds and closes them. It samples the gateway process (found with `scripts/stack.py ps`
by its port, or --pid): RSS (VmRSS) before, when all are connected, at the end of the hold and 5 s after the close,
CPU seconds during the hold, and after the close how long it stays busy (until it uses < 20 % of a core for 3 s:
the disconnects handled); and Redis (INFO: commands processed, memory, CPU) during the hold, which shows the cost
of the presence heartbeat and the expiry sweep for the idle sockets.

The counts run in increasing order against the same process, so a later count's "before" already includes the
allocator's high-water mark of the earlier ones (per-socket figures are most exact for the first count of a freshly
started gateway). The open-file limit caps the count: the Node child gets its hard limit; the gateway's own soft limit
(/proc/<pid>/limits) is read and a count that would not fit is reported as capped, not run.

Bounded: counts <= 20,000, hold <= 600 s, parallel handshakes <= 1,000; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from ingest import loopback_only
from realtime import JS, ensure_node_client
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
MAX_COUNT = 20_000
MAX_HOLD = 600.0
FD_MARGIN = 300  # the gateway's own files: listeners, Redis, gRPC channels, logs
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def process_cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return MAX_COUNT * 10 if soft == "unlimited" else int(soft)
    return 1024


def stack_pids(profile: str) -> dict[str, int]:
    """name or `:port` -> pid, from `scripts/stack.py ps`."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "ps", "--profile", profile],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    pids: dict[str, int] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\S+)\s+pid=(\d+)\s+http=:(\d+)", line)
        if match:
            pids[match.group(1)] = pids[f":{match.group(3)}"] = int(match.group(2))
            continue
        match = re.match(r"^(postgres|redis|kafka)\s+.*\bpid (\d+)", line)
        if match:
            pids[match.group(1)] = int(match.group(2))
    return pids


class RedisProbe:
    def __init__(self, url: str, pid: int | None) -> None:
        self.redis = Redis.from_url(url)
        self.pid = pid

    async def snapshot(self, tenant_id: str) -> dict[str, Any]:
        info = await self.redis.info()
        commandstats = await self.redis.info("commandstats")
        presence_keys = [key async for key in self.redis.scan_iter(match=f"rt:presence:{tenant_id}*", count=1000)]
        presence_bytes = 0
        members = 0
        for key in presence_keys:
            presence_bytes += int(await self.redis.memory_usage(key) or 0)
            if await self.redis.type(key) == b"zset":
                members += int(await self.redis.zcard(key))
        return {"commands": int(info["total_commands_processed"]), "used_memory": int(info["used_memory"]),
                "cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
                "presence_keys": len(presence_keys), "presence_members": members,
                "presence_bytes": presence_bytes, "at": time.monotonic(),
                "calls": {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in commandstats.items()
                          if isinstance(value, dict)}}

    async def close(self) -> None:
        await self.redis.aclose()


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def settle(pid: int, *, busy_share: float = 0.2, quiet_samples: int = 3, timeout: float = 600.0) -> float:
    """Waits until the process uses less than `busy_share` of a core for `quiet_samples` seconds in a row (the
    disconnects handled); returns when it became quiet (monotonic), or the deadline."""
    deadline = time.monotonic() + timeout
    quiet, quiet_since, last = 0, time.monotonic(), cpu_seconds(pid)
    while quiet < quiet_samples and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last < busy_share:
            quiet += 1
        else:
            quiet, quiet_since = 0, time.monotonic()
        last = now
    return quiet_since


def top_commands(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    rates = {name: (calls - before.get(name, 0)) / seconds for name, calls in after.items()}
    return {name: round(rate, 1) for name, rate in sorted(rates.items(), key=lambda item: -item[1])[:6] if rate > 0}


async def register(http: httpx.AsyncClient, gateway: str) -> tuple[str, str]:
    response = await http.post(f"{gateway}/auth/register", json={
        "tenantName": f"Bench Sockets {uuid.uuid4().hex[:6]}", "name": "Bench Admin",
        "email": f"bench-sockets-{uuid.uuid4().hex[:8]}@hotel.test", "password": "correct horse battery staple"})
    response.raise_for_status()
    session = response.json()
    return session["accessToken"], session["tenant"]["id"]


async def one_count(*, node: str, gateway: str, token: str, tenant_id: str, count: int, parallel: int, hold: float,
                    pid: int, redis: RedisProbe) -> dict[str, Any]:
    before = rss_mib(pid)
    process = await asyncio.create_subprocess_exec(
        node, str(JS / "idle_sockets.js"), gateway, str(count), str(parallel), str(int(hold + 600)),
        env={**os.environ, "EVA_ACCESS_TOKEN": token},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=raise_fd_limit, limit=1 << 20)
    assert process.stdout is not None and process.stdin is not None
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            await lines.put(json.loads(raw))

    reader = asyncio.create_task(read())
    row: dict[str, Any] = {"count": count, "rss_before_mib": round(before, 1)}
    try:
        connected = await asyncio.wait_for(lines.get(), timeout=max(120.0, count / 20))
        row.update(connected=connected["connected"], failed=connected["failed"], errors=connected["errors"],
                   connect_seconds=round(connected["seconds"], 2),
                   connect_rate=round(connected["connected"] / connected["seconds"], 1) if connected["seconds"] else 0)
        rss_connected = rss_mib(pid)
        row["rss_connected_mib"] = round(rss_connected, 1)
        cpu_start, redis_start = cpu_seconds(pid), await redis.snapshot(tenant_id)
        await asyncio.sleep(hold)
        cpu_end, redis_end = cpu_seconds(pid), await redis.snapshot(tenant_id)
        rss_held = rss_mib(pid)
        elapsed = redis_end["at"] - redis_start["at"]
        row.update(
            rss_after_hold_mib=round(rss_held, 1),
            kib_per_socket=round((rss_held - before) * 1024 / connected["connected"], 1)
            if connected["connected"] else None,
            gateway_cpu_pct_during_hold=round(100 * (cpu_end - cpu_start) / elapsed, 1),
            redis_commands_per_s=round((redis_end["commands"] - redis_start["commands"]) / elapsed, 1),
            redis_cpu_pct=round(100 * (redis_end["cpu"] - redis_start["cpu"]) / elapsed, 2),
            redis_top_commands_per_s=top_commands(redis_start["calls"], redis_end["calls"], elapsed),
            redis_presence_keys=redis_end["presence_keys"], redis_presence_entries=redis_end["presence_members"],
            redis_presence_kib=round(redis_end["presence_bytes"] / 1024, 1),
        )
        process.stdin.close()
        closed: dict[str, Any] = {}
        while closed.get("type") != "closed":
            closed = await asyncio.wait_for(lines.get(), timeout=30)
        row.update(open_at_end=closed["open"], disconnects_during_hold=closed["disconnects"],
                   disconnect_reasons=closed["reasons"])
        await asyncio.wait_for(process.wait(), timeout=60)
        closed_at, cpu_at_close = time.monotonic(), cpu_seconds(pid)
        row["settle_seconds"] = round(await settle(pid) - closed_at, 1)
        row["gateway_cpu_seconds_after_close"] = round(cpu_seconds(pid) - cpu_at_close, 1)
        row["rss_after_close_mib"] = round(rss_mib(pid), 1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    gateway = loopback_only(args.gateway)
    loopback_only("http://" + (urlsplit(args.redis).hostname or ""))
    counts = sorted(int(count) for count in args.counts.split(","))
    if any(count < 1 or count > MAX_COUNT for count in counts):
        raise SystemExit(f"counts must be within 1..{MAX_COUNT}")
    pids = stack_pids(args.profile)
    pid = args.pid or pids.get(f":{urlsplit(gateway).port}")
    if pid is None:
        raise SystemExit(f"no process found for {gateway} in `scripts/stack.py ps --profile {args.profile}`; "
                         "pass --pid")
    cmdline = process_cmdline(pid)
    gateway_fds = open_files_limit(pid)
    node_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cap = min(gateway_fds, node_fds) - FD_MARGIN
    node = ensure_node_client()
    redis = RedisProbe(args.redis, pids.get("redis"))
    rows: list[dict[str, Any]] = []
    start_rss: float | None = None  # the process before the first count: later counts reuse its freed memory
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            token, tenant_id = await register(http, gateway)
            for count in counts:
                if count > cap:
                    rows.append({"count": count, "skipped": f"open-file limit: gateway {gateway_fds}, "
                                                           f"Node hard {node_fds} (cap {cap})"})
                    continue
                row = await one_count(node=node, gateway=gateway, token=token, tenant_id=tenant_id, count=count,
                                      parallel=args.parallel, hold=args.hold, pid=pid, redis=redis)
                start_rss = start_rss or row["rss_before_mib"]
                if row.get("connected") and "rss_after_hold_mib" in row:
                    row["kib_per_socket_since_start"] = round(
                        (row["rss_after_hold_mib"] - start_rss) * 1024 / row["connected"], 1)
                rows.append(row)
    finally:
        await redis.close()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gateway_pid": pid,
            "gateway_cmdline": cmdline.strip(), "gateway_open_files_limit": gateway_fds, "node_open_files": node_fds,
            "hold_seconds": args.hold, "parallel": args.parallel, "load_average": os.getloadavg(), "counts": rows}


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}, gateway pid {result['gateway_pid']} ({result['gateway_cmdline']}), open-file limit "
             f"{result['gateway_open_files_limit']}; hold {result['hold_seconds']:g} s; "
             f"load average {', '.join(f'{x:.2f}' for x in result['load_average'])}",
             "sockets  connected failed  connect/s  RSS before -> connected -> after hold (MiB)  KiB/socket  "
             "open at end  disconnects  gw CPU %  Redis cmd/s  Redis CPU %  presence keys/entries/KiB  "
             "RSS after close"]
    for row in result["counts"]:
        if "skipped" in row:
            lines.append(f"{row['count']:>7}  skipped: {row['skipped']}")
            continue
        lines.append(
            f"{row['count']:>7}  {row['connected']:>9} {row['failed']:>6}  {row['connect_rate']:>9}  "
            f"{row['rss_before_mib']:>10} -> {row['rss_connected_mib']} -> {row.get('rss_after_hold_mib')}  "
            f"{row.get('kib_per_socket')!s:>10}  {row.get('open_at_end')!s:>11}  "
            f"{row.get('disconnects_during_hold')!s:>11}  {row.get('gateway_cpu_pct_during_hold')!s:>8}  "
            f"{row.get('redis_commands_per_s')!s:>11}  {row.get('redis_cpu_pct')!s:>11}  "
            f"{row.get('redis_presence_keys')}/{row.get('redis_presence_entries')}/{row.get('redis_presence_kib')}  "
            f"{row.get('rss_after_close_mib')}")
        lines.append(f"         since the first count's start: {row.get('kib_per_socket_since_start')} KiB/socket; "
                     f"Redis during the hold: {row.get('redis_top_commands_per_s')} (calls/s); "
                     f"errors {row['errors'] or 'none'}; disconnect reasons {row.get('disconnect_reasons') or 'none'}; "
            f"after the close the gateway was busy {row.get('settle_seconds')} s "
            f"({row.get('gateway_cpu_seconds_after_close')} CPU s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:3001")
    parser.add_argument("--profile", default="dev", choices=["dev", "test"], help="whose `stack.py ps` finds the pid")
    parser.add_argument("--pid", type=int, default=None, help="the gateway process (default: found by its port)")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0", help="the stack's Redis (dev: 16379)")
    parser.add_argument("--counts", default="1000,5000,10000")
    parser.add_argument("--hold", type=float, default=60.0, help=f"seconds all sockets stay open (<= {MAX_HOLD:g})")
    parser.add_argument("--parallel", type=int, default=100, help="handshakes in flight (<= 1000)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    args.hold = max(1.0, min(args.hold, MAX_HOLD))
    args.parallel = max(1, min(args.parallel, 1000))
    result = asyncio.run(run(args))
    sys.stdout.write((json.dumps(result, indent=2) if args.json else table(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
