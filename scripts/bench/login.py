"""Login latency through the gateway at a fixed request rate (open loop), against a running stack.

    uv run python scripts/bench/login.py [--gateway http://127.0.0.1:3001] [--rate 20] [--duration 30]

It registers its own hotels (POST /auth/register, one admin each: --accounts), then, at the same rate and for the
same time:
  1. GET /healthz on the gateway: the baseline (the HTTP stack, no upstream, no password hashing);
  2. POST /auth/login, the admins in turn: gateway -> auth (gRPC) -> argon2id check -> tokens.
Requests leave on a fixed schedule whatever the answers (open loop: a slow answer does not delay the next request),
and each latency is measured from the request's scheduled time, so a backlog counts against the figures. Printed:
p50/p90/p99/max per phase, the answers by status, transport errors, and the login/baseline ratio.

Bounded: at most --max-requests per phase, --rate <= 200/s, --duration <= 300 s, loopback addresses only.

Logins are limited per client IP (gateway: EVA_RATE_LIMIT_AUTH_IP_PER_MINUTE, default 60/min on /auth/*; auth:
EVA_LOGIN_IP_MAX_ATTEMPTS per EVA_LOGIN_IP_WINDOW_SECONDS, default 30 per 300 s). Real logins come from many
addresses, so the requests leave round robin from --clients loopback source addresses (127.x.y.z; Linux routes
all of 127.0.0.0/8 to lo), each a client of its own, keeping every address within both budgets. Any 429 left is
reported (and means the figures include the limiter: use more --clients or a lower --rate). auth also throttles
per account (every attempt counts until a success clears it), so one account logging in 20 times a second from
everywhere at once would be throttled as it should: the logins rotate over --accounts accounts instead.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import secrets
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_RATE = 200.0
MAX_DURATION = 300.0


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)  # "<status> <problem code>" of the non-2xx answers
    sent: int = 0
    send_seconds: float = 0.0  # from the first request sent to the last

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the successful answers' latencies (ms); NaN when there are none."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
        return ordered[rank - 1]

    def summary(self) -> dict[str, Any]:
        rate = round((self.sent - 1) / self.send_seconds, 2) if self.send_seconds else 0.0
        return {
            "phase": self.name, "sent": self.sent, "ok": self.ok, "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(self.errors), "refusals": dict(self.refusals), "achieved_rate": rate,
            "p50_ms": round(self.percentile(0.50), 2), "p90_ms": round(self.percentile(0.90), 2),
            "p99_ms": round(self.percentile(0.99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else float("nan"),
        }


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as error:
        raise SystemExit(f"cannot resolve {host!r}: {error}") from error
    if not addresses or not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise SystemExit(f"refusing {url}: this benchmark only targets loopback addresses")
    return url.rstrip("/")


async def open_loop(
    phase: Phase, send: Callable[[int], Awaitable[httpx.Response]], *, rate: float, duration: float,
    max_requests: int, max_in_flight: int,
) -> None:
    """Fires `send` every 1/rate seconds for `duration` (at most max_requests), without waiting for answers."""
    count = min(max_requests, int(rate * duration))
    interval = 1.0 / rate
    in_flight = asyncio.Semaphore(max_in_flight)
    tasks: list[asyncio.Task[None]] = []

    async def one(index: int, scheduled: float) -> None:
        try:
            response = await send(index)
        except httpx.HTTPError as error:
            phase.errors[type(error).__name__] += 1
        else:
            phase.statuses[response.status_code] += 1
            if 200 <= response.status_code < 300:
                phase.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            else:
                phase.refusals[f"{response.status_code} {problem_code(response)}"] += 1
        finally:
            in_flight.release()

    started = time.perf_counter()
    for index in range(count):
        scheduled = started + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight.locked():  # the stack is too far behind: the cap bounds memory and sockets, and it shows
            phase.errors["client backlog cap"] += 1
        await in_flight.acquire()
        phase.sent += 1
        tasks.append(asyncio.create_task(one(index, scheduled)))
    phase.send_seconds = time.perf_counter() - started
    await asyncio.gather(*tasks)


def problem_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", "-"))
    except ValueError:
        return "-"


async def register(client: httpx.AsyncClient, gateway: str) -> tuple[str, str]:
    """A new hotel and its admin, whose login is checked once; returns (email, password)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@bench.test"
    password = "bench " + secrets.token_urlsafe(18)
    response = await client.post(f"{gateway}/auth/register", json={
        "tenantName": f"Bench {uuid.uuid4().hex[:6]}", "name": "Bench Admin", "email": email, "password": password})
    if response.status_code not in (200, 201):
        raise SystemExit(f"could not register the benchmark's hotel: {response.status_code} {response.text[:300]}")
    check = await client.post(f"{gateway}/auth/login", json={"email": email, "password": password})
    if check.status_code != 200:
        raise SystemExit(f"the benchmark's login does not work: {check.status_code} {check.text[:300]}")
    return email, password


def table(phases: list[Phase]) -> str:
    lines = [f"{'phase':18} {'sent':>6} {'2xx':>6} {'other':>22} {'errors':>8} {'p50 ms':>8} {'p90 ms':>8} "
             f"{'p99 ms':>8} {'max ms':>8} {'rate/s':>7}"]
    for phase in phases:
        s = phase.summary()
        other = ",".join(f"{status}:{n}" for status, n in s["statuses"].items() if not 200 <= status < 300) or "-"
        lines.append(f"{phase.name:18} {s['sent']:>6} {s['ok']:>6} {other:>22} {sum(phase.errors.values()):>8} "
                     f"{s['p50_ms']:>8.1f} {s['p90_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['max_ms']:>8.1f} "
                     f"{s['achieved_rate']:>7.1f}")
    return "\n".join(lines)


def source_addresses(count: int) -> list[str]:
    """`count` distinct loopback addresses 127.0.1.1, 127.0.1.2, ... (never 127.0.0.1, the stack's own)."""
    return [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(count)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    gateway = loopback_only(args.gateway)
    per_client = max(4, args.max_in_flight // args.clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [httpx.AsyncClient(timeout=args.timeout, limits=limits,
                                 transport=httpx.AsyncHTTPTransport(local_address=address, limits=limits))
               for address in source_addresses(args.clients)]
    try:
        client = clients[0]
        health = await client.get(f"{gateway}/healthz")
        if health.status_code != 200:
            raise SystemExit(f"{gateway}/healthz answered {health.status_code}: is the stack up (make ps)?")
        gate = asyncio.Semaphore(4)

        async def account(index: int) -> tuple[str, str]:
            async with gate:
                return await register(clients[index % len(clients)], gateway)

        accounts = await asyncio.gather(*(account(index) for index in range(args.accounts)))
        baseline, login = Phase("GET /healthz"), Phase("POST /auth/login")
        common = {"rate": args.rate, "duration": args.duration, "max_requests": args.max_requests,
                  "max_in_flight": args.max_in_flight}
        await open_loop(baseline, lambda i: clients[i % len(clients)].get(f"{gateway}/healthz"), **common)
        await open_loop(login, lambda i: clients[i % len(clients)].post(f"{gateway}/auth/login", json={
            "email": accounts[i % len(accounts)][0], "password": accounts[i % len(accounts)][1]}), **common)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    ratio = {f"{name}_ratio": round(login.percentile(q) / baseline.percentile(q), 1)
             for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
    return {"gateway": gateway, "rate": args.rate, "duration_s": args.duration, "clients": args.clients,
            "accounts": args.accounts,
            "phases": [baseline, login], "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:3001", help="the gateway's base URL (loopback only)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second in each phase")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--max-requests", type=int, default=6000, help="cap per phase")
    parser.add_argument("--max-in-flight", type=int, default=256, help="client-side cap on open requests")
    parser.add_argument("--clients", type=int, default=64,
                        help="loopback source addresses the requests come from, round robin (per-IP limits)")
    parser.add_argument("--accounts", type=int, default=20,
                        help="hotels registered for the run; the logins rotate over their admins")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if not 0 < args.rate <= MAX_RATE or not 0 < args.duration <= MAX_DURATION or not 0 < args.max_requests <= 20_000:
        parser.error(f"--rate in (0, {MAX_RATE:g}], --duration in (0, {MAX_DURATION:g}], --max-requests <= 20000")
    if not 1 <= args.clients <= 1000 or not 1 <= args.accounts <= 200:
        parser.error("--clients in [1, 1000], --accounts in [1, 200]")
    result = asyncio.run(run(args))
    phases: list[Phase] = result["phases"]
    out = sys.stdout
    if args.json:
        out.write(json.dumps({**result, "phases": [phase.summary() for phase in phases]}, indent=2) + "\n")
    else:
        out.write(f"gateway {result['gateway']}: {args.rate:g} req/s for {args.duration:g} s per phase, open loop, "
                  f"from {args.clients} loopback addresses, {args.accounts} accounts\n")
        out.write(table(phases) + "\n")
        for phase in phases:
            if phase.refusals:
                out.write(f"{phase.name} refusals: " + ", ".join(f"{what} x{n}" for what, n in
                                                                 phase.refusals.most_common()) + "\n")
        out.write("login / healthz: " + ", ".join(f"{k.removesuffix('_ratio')} x{v}"
                                                  for k, v in result["ratio"].items()) + "\n")
    if any(phase.statuses.get(429) for phase in phases):
        sys.stderr.write("note: 429 answers: the per-IP limits on /auth/* refused part of the load, so the figures "
                         "include the limiter; use more --clients or a lower --rate\n")


if __name__ == "__main__":
    main()
