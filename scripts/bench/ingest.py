"""Webhook ingest throughput and latency, and time from webhook to stored message, against a running stack.

    uv run python scripts/bench/ingest.py [--ingest http://127.0.0.1:3002] [--gateway http://127.0.0.1:3001]
        [--simulator http://127.0.0.1:3010] [--concurrency 1,4,16,32] [--requests 400] [--e2e-messages 100] [--json]

It registers its own hotel (POST /auth/register on the gateway, a WhatsApp number on the simulator's /_sim API and
the same credentials through PUT /api/tenant/whatsapp, as tests-e2e/e2e_support.register_hotel does), then:
  1. webhook -> stored message, first (with the pipeline idle): --e2e-messages deliveries, one after another, each
     timed from the POST to its Socket.io `message:new` on the gateway (the message is stored by messaging and
     announced by realtime): p50/p99;
  2. for each concurrency level (closed loop: that many clients, each sending its next request as soon as the last
     was answered), --requests signed text deliveries POSTed to ingest's /webhooks/whatsapp, each with its own wamid,
     signed locally with the hotel's app secret exactly like the simulator (eva_simulator.signing), and the same
     number of GET /healthz on the same ingest server (the bare endpoint: same process, no signature, no tenant
     look-up, no Kafka ack): deliveries/s and p50/p99 time to 200 for both, and the ratio.

Bounded: --requests <= 5,000 per level and phase, concurrency <= 64, --e2e-messages <= 1,000; loopback only.
The deliveries are real guest messages for the benchmark's own hotel (they land in its inbox). Ingest against an
endpoint that only verifies the HMAC (issue 11), in processes of their own under the same load: bare_hmac.py.
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
import socketio
from eva_simulator.signing import SIGNATURE_HEADER, meta_body, signature

MAX_REQUESTS = 5_000
MAX_CONCURRENCY = 64
MAX_E2E = 1_000
WABA_ID = "102290129340398"
GUEST = "16505551234"


@dataclass
class Phase:
    name: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[max(1, min(len(ordered), math.ceil(fraction * len(ordered)))) - 1]

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {"phase": self.name, "concurrency": self.concurrency, "ok": len(self.latencies_ms),
                "statuses": dict(sorted(self.statuses.items())), "errors": dict(self.errors),
                "per_second": round(self.per_second, 1), "p50_ms": round(self.percentile(0.5), 2),
                "p99_ms": round(self.percentile(0.99), 2)}


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as error:
        raise SystemExit(f"cannot resolve {host!r}: {error}") from error
    if not addresses or not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise SystemExit(f"refusing {url}: this benchmark only targets loopback addresses")
    return url.rstrip("/")


@dataclass
class Hotel:
    access_token: str
    phone_number_id: str
    app_secret: str


async def register_hotel(http: httpx.AsyncClient, *, gateway: str, simulator: str, ingest: str) -> Hotel:
    response = await http.post(f"{gateway}/auth/register", json={
        "tenantName": f"Bench Hotel {uuid.uuid4().hex[:6]}", "name": "Bench Admin",
        "email": f"bench-{uuid.uuid4().hex[:8]}@hotel.test", "password": "correct horse battery staple"})
    response.raise_for_status()
    hotel = Hotel(access_token=response.json()["accessToken"],
                  phone_number_id=str(10**14 + secrets.randbelow(9 * 10**14)), app_secret=secrets.token_hex(16))
    wa_token = "EAA" + secrets.token_urlsafe(32)
    (await http.post(f"{simulator}/_sim/numbers", json={
        "phoneNumberId": hotel.phone_number_id, "wabaId": WABA_ID, "displayPhoneNumber": "15550783881",
        "accessToken": wa_token, "appSecret": hotel.app_secret, "webhookUrl": f"{ingest}/webhooks/whatsapp"},
    )).raise_for_status()
    (await http.put(f"{gateway}/api/tenant/whatsapp", headers={"Authorization": f"Bearer {hotel.access_token}"},
                    json={"phoneNumberId": hotel.phone_number_id, "wabaId": WABA_ID, "accessToken": wa_token,
                          "appSecret": hotel.app_secret, "verifyToken": secrets.token_urlsafe(16)},
                    )).raise_for_status()
    return hotel


def text_delivery(hotel: Hotel, wamid: str, body: str) -> bytes:
    """A Meta text delivery (reference §3.1 shape), serialized like Meta (compact, ASCII-escaped, `\\/`)."""
    return meta_body({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": hotel.phone_number_id},
                  "contacts": [{"profile": {"name": "Bench Guest"}, "wa_id": GUEST}],
                  "messages": [{"from": GUEST, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                                "text": {"body": body}}]},
        "field": "messages"}]}]})


def new_wamid() -> str:
    return "wamid.BENCH" + secrets.token_hex(12).upper()


async def closed_loop(phase: Phase, send: Callable[[], Awaitable[httpx.Response]], *, total: int) -> None:
    remaining = total

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await send()
            except httpx.HTTPError as error:
                phase.errors[type(error).__name__] += 1
                continue
            phase.statuses[response.status_code] += 1
            if response.status_code == 200:
                phase.latencies_ms.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(phase.concurrency)))
    phase.seconds = time.perf_counter() - started


async def webhook_to_stored(http: httpx.AsyncClient, hotel: Hotel, *, ingest: str, gateway: str,
                            count: int, timeout: float = 30.0) -> Phase:
    """POST -> Socket.io message:new (stored by messaging, announced by realtime), one message at a time."""
    phase = Phase("webhook_to_message_new", 1)
    arrivals: dict[str, float] = {}
    arrived = asyncio.Condition()
    sio = socketio.AsyncClient(reconnection=False)

    async def on_message(data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("wamid"), str):
            async with arrived:
                arrivals[data["wamid"]] = time.perf_counter()
                arrived.notify_all()

    sio.on("message:new", on_message)

    await sio.connect(gateway, auth={"token": hotel.access_token}, transports=["websocket"],
                      socketio_path="socket.io", wait_timeout=10)
    try:
        started = time.perf_counter()
        for index in range(count):
            wamid = new_wamid()
            body = text_delivery(hotel, wamid, f"bench e2e {index}")
            sent = time.perf_counter()
            response = await http.post(f"{ingest}/webhooks/whatsapp", content=body, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, hotel.app_secret)})
            phase.statuses[response.status_code] += 1
            if response.status_code != 200:
                continue
            def stored(wamid: str = wamid) -> bool:
                return wamid in arrivals

            try:
                async with arrived:
                    await asyncio.wait_for(arrived.wait_for(stored), timeout=timeout)
            except TimeoutError:
                phase.errors[f"no message:new within {timeout:g} s"] += 1
                continue
            phase.latencies_ms.append((arrivals[wamid] - sent) * 1000)
        phase.seconds = time.perf_counter() - started
    finally:
        await sio.disconnect()
    return phase


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ingest, gateway, simulator = (loopback_only(args.ingest), loopback_only(args.gateway),
                                  loopback_only(args.simulator))
    levels = [int(level) for level in args.concurrency.split(",")]
    if any(level < 1 or level > MAX_CONCURRENCY for level in levels):
        raise SystemExit(f"concurrency levels must be within 1..{MAX_CONCURRENCY}")
    requests = max(1, min(args.requests, MAX_REQUESTS))
    limits = httpx.Limits(max_connections=MAX_CONCURRENCY, max_keepalive_connections=MAX_CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        hotel = await register_hotel(http, gateway=gateway, simulator=simulator, ingest=ingest)

        async def post_delivery() -> httpx.Response:
            body = text_delivery(hotel, new_wamid(), "bench")
            return await http.post(f"{ingest}/webhooks/whatsapp", content=body, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, hotel.app_secret)})

        async def get_health() -> httpx.Response:
            return await http.get(f"{ingest}/healthz")

        # First, with the pipeline idle: the flood below leaves a backlog in messaging that would count here.
        e2e = await webhook_to_stored(http, hotel, ingest=ingest, gateway=gateway,
                                      count=max(1, min(args.e2e_messages, MAX_E2E)), timeout=args.e2e_timeout)
        await closed_loop(Phase("warm-up", 4), post_delivery, total=20)
        rows: list[dict[str, Any]] = []
        for level in levels:
            deliveries, bare = Phase("deliveries", level), Phase("healthz", level)
            await closed_loop(deliveries, post_delivery, total=requests)
            await closed_loop(bare, get_health, total=requests)
            rows.append({"concurrency": level, "deliveries": deliveries.summary(), "healthz": bare.summary(),
                         "throughput_ratio": round(deliveries.per_second / bare.per_second, 3)
                         if bare.per_second else None,
                         "p50_ratio": round(deliveries.percentile(0.5) / bare.percentile(0.5), 2)})
    return {"levels": rows, "webhook_to_stored": e2e.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingest", default="http://127.0.0.1:3002")
    parser.add_argument("--gateway", default="http://127.0.0.1:3001")
    parser.add_argument("--simulator", default="http://127.0.0.1:3010")
    parser.add_argument("--concurrency", default="1,4,16,32", help="comma-separated closed-loop client counts")
    parser.add_argument("--requests", type=int, default=400, help=f"per level and phase (<= {MAX_REQUESTS})")
    parser.add_argument("--e2e-messages", type=int, default=100, help=f"webhook -> message:new (<= {MAX_E2E})")
    parser.add_argument("--e2e-timeout", type=float, default=30.0, help="seconds to wait for each message:new")
    parser.add_argument("--json", action="store_true", help="print the raw JSON result only")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    lines = ["concurrency  deliveries/s  p50 ms  p99 ms  | healthz/s  p50 ms  p99 ms  | throughput ratio  errors"]
    for row in result["levels"]:
        d, h = row["deliveries"], row["healthz"]
        lines.append(f"{row['concurrency']:>11}  {d['per_second']:>12}  {d['p50_ms']:>6}  {d['p99_ms']:>6}  | "
                     f"{h['per_second']:>9}  {h['p50_ms']:>6}  {h['p99_ms']:>6}  | {row['throughput_ratio']!s:>16}  "
                     f"{d['errors'] or d['statuses']}")
    e2e = result["webhook_to_stored"]
    lines.append(f"webhook -> message:new over {e2e['ok']} messages: p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms "
                 f"(answers {e2e['statuses']}, errors: {e2e['errors'] or 'none'})")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
