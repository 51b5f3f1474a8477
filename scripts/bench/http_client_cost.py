"""CPU per request of the HTTP client Eva's sender and the simulator use (httpx.AsyncClient on uvloop), against a
local aiohttp endpoint in the same process, so the figure is client plus a light server, on one clock.

    uv run --no-sync python scripts/bench/http_client_cost.py [--requests 2000] [--runs 3]

Prints the CPU milliseconds (time.process_time) per POST, per run and the median. It found that without `sniffio`
installed httpcore searched sys.path on every request (a failed `import sniffio`): 1.50 ms per request, 0.89 with
it (medians of 3, 2026-12-06).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
import uvloop
from aiohttp import web


async def measure(requests: int) -> float:
    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"messages": [{"id": "wamid.bench"}]})

    app = web.Application()
    app.router.add_post("/send", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/send"
            for _ in range(200):  # warm: connections, caches
                await client.post(url, json={"to": "15551234567"})
            started = time.process_time()
            for _ in range(requests):
                await client.post(url, json={"to": "15551234567"})
            return (time.process_time() - started) / requests * 1000
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import sniffio  # noqa: F401, PLC0415  (what the figure depends on)
        installed = "installed"
    except ImportError:
        installed = "missing"
    figures = [uvloop.run(measure(args.requests)) for _ in range(args.runs)]
    for number, figure in enumerate(figures, 1):
        sys.stdout.write(f"run {number}: {figure:.3f} CPU ms per request (client and server)\n")
    sys.stdout.write(f"median of {args.runs}: {statistics.median(figures):.3f} CPU ms per request; "
                     f"sniffio {installed}\n")


if __name__ == "__main__":
    main()
