"""Outbound webhooks (n8n-integration) to a local receiver: deliveries per second and event → delivery latency.

    make up
    uv run --no-sync python scripts/bench/webhooks.py --rates 20,100 --duration 20 [--json]

Per rate, a hotel of its own (registered through the gateway, its number at the simulator) subscribes
`message.received` to a receiver this script serves on loopback (aiohttp, answering 200 after checking every
`X-Eva-Signature`). Guests' text messages are POSTed to webhook-ingest signed like Meta, open loop at the rate, 50
guests. Printed per rate:
- the deliveries received, and their rate: from the first POST to the last delivery, and the median per second;
- p50 and p99 from the event's `occurredAt` (when messaging stored the message) to the receipt, and from the
  guest's webhook POST to the receipt;
- bad signatures and duplicates;
- the CPU milliseconds per delivery of n8n-integration, PostgreSQL and Kafka, from /proc, with the idle cost taken
  off (`stack_cpu.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import statistics
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import stack_cpu
from aiohttp import web
from eva_simulator.signing import SIGNATURE_HEADER, signature
from ingest import Hotel, loopback_only, new_wamid, register_hotel
from realtime import delivery, profile_urls, stats

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / ".local" / "bench" / "webhooks.json"
GUESTS = 50
MAX_RATE = 500
MAX_DURATION = 120.0


class Receiver:
    """A loopback HTTP receiver of Eva's webhooks: checks each signature, notes each event's receipt once."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.received: dict[str, tuple[float, dict[str, Any]]] = {}  # event id -> (receipt ms, envelope)
        self.bad_signatures = 0
        self.duplicates = 0
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.expected = 0
        self.all_in = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        at = time.time() * 1000
        body = await request.read()
        parts = dict(part.strip().split("=", 1) for part in request.headers.get("X-Eva-Signature", "").split(",")
                     if "=" in part)
        expected = hmac.new(self.secret, f"{parts.get('t', '')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        envelope = json.loads(body)
        if envelope["id"] in self.received:
            self.duplicates += 1
        else:
            self.received[envelope["id"]] = (at, envelope)
            if self.expected and len(self.received) >= self.expected:
                self.all_in.set()
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def one_rate(http: httpx.AsyncClient, urls: dict[str, str], pids: dict[str, int], rate: float,
                   duration: float, idle_seconds: float) -> dict[str, Any]:
    hotel: Hotel = await register_hotel(http, gateway=urls["gateway"], simulator=urls["simulator"],
                                        ingest=urls["ingest"])
    receiver = Receiver(secrets.token_hex(32))
    await receiver.start()
    try:
        created = await http.post(f"{urls['gateway']}/api/webhooks",
                                  headers={"Authorization": f"Bearer {hotel.access_token}"},
                                  json={"url": receiver.url, "events": ["message.received"],
                                        "secret": receiver.secret.decode()})
        created.raise_for_status()
        await stack_cpu.settle(pids)
        idle_before = stack_cpu.sample(pids)
        await asyncio.sleep(idle_seconds)
        idle_after = stack_cpu.sample(pids)
        posted: dict[str, float] = {}  # wamid -> POST ms
        total = int(rate * duration)
        receiver.expected = total
        before = stack_cpu.sample(pids)
        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()

        async def post(n: int) -> None:
            wamid = new_wamid()
            body = delivery(hotel, wamid=wamid, guest=f"1650555{n % GUESTS:06d}", body=f"bench {n}")
            posted[wamid] = time.time() * 1000
            response = await http.post(f"{urls['ingest']}/webhooks/whatsapp", content=body, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, hotel.app_secret)})
            response.raise_for_status()

        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(post(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        with contextlib.suppress(TimeoutError):  # what never came is counted as missing
            await asyncio.wait_for(receiver.all_in.wait(), timeout=120)
        await stack_cpu.settle(pids)
        after = stack_cpu.sample(pids)
        charge = stack_cpu.charged(idle=(idle_before, idle_after), run=(before, after), units=len(receiver.received))
        receipts = sorted(at for at, _ in receiver.received.values())
        from_event = [at - datetime.fromisoformat(envelope["occurredAt"]).timestamp() * 1000
                      for at, envelope in receiver.received.values()]
        from_post = [at - posted[envelope["data"]["wamid"]] for at, envelope in receiver.received.values()
                     if envelope["data"].get("wamid") in posted]
        per_second = Counter(int((at - receipts[0]) // 1000) for at in receipts) if receipts else Counter()
        first_post = min(posted.values()) if posted else 0.0
        return {
            "rate": rate, "duration_s": duration, "posted": total, "received": len(receiver.received),
            "bad_signatures": receiver.bad_signatures, "duplicates": receiver.duplicates,
            "deliveries_per_s_overall": round(len(receipts) / max(1e-9, (receipts[-1] - first_post) / 1000), 1)
            if receipts else 0.0,
            "deliveries_per_s_steady": statistics.median(per_second.values()) if per_second else 0,
            "event_to_delivery_ms": stats(from_event), "webhook_to_delivery_ms": stats(from_post),
            # the webhook's own work is n8n-integration's (fan-out, delivery, its outbox); the rest is the guest
            # message's way through Eva, which issue 11's benchmark measures
            "cpu_ms_per_delivery": {
                "n8n-integration": round(charge.per_unit_ms.get("n8n-integration", float("nan")), 2),
                "whole stack": round(sum(value for name, value in charge.per_unit_ms.items()
                                         if name not in ("simulator",)), 2)},
        }
    finally:
        await receiver.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    urls = {name: loopback_only(url) for name, url in profile_urls(args.profile).items() if name != "kafka"}
    pids = stack_cpu.process_pids(args.profile)
    results = []
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=64)) as http:
        for rate in (float(value) for value in args.rates.split(",")):
            results.append(await one_rate(http, urls, pids, rate, args.duration, args.idle))
    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "profile": args.profile,
            "rates": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="dev")
    parser.add_argument("--rates", default="20,100", help=f"guest messages per second (<= {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=20.0, help=f"seconds per rate (<= {MAX_DURATION:g})")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampled before each rate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if any(float(value) > MAX_RATE for value in args.rates.split(",")) or args.duration > MAX_DURATION:
        parser.error("rate or duration beyond the benchmark's limits")
    result = asyncio.run(run(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    for item in result["rates"]:
        sys.stdout.write(
            f"{item['rate']:g}/s for {item['duration_s']:g} s: {item['received']} of {item['posted']} delivered "
            f"(bad signatures {item['bad_signatures']}, duplicates {item['duplicates']}); "
            f"{item['deliveries_per_s_overall']}/s overall, {item['deliveries_per_s_steady']}/s steady\n"
            f"  event -> delivery   {item['event_to_delivery_ms']}\n"
            f"  webhook -> delivery {item['webhook_to_delivery_ms']}\n"
            f"  CPU ms per delivery {item['cpu_ms_per_delivery']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
