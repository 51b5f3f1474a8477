"""CPU and wall time per event of realtime's Redis sequencer (assign a seq, mark it emitted), in batches of 1 and 10,
against the Redis of EVA_REDIS_URL (e.g. the dev profile's, after `make up`):

    EVA_REDIS_URL=redis://127.0.0.1:16379/0 uv run --no-sync python scripts/bench/sequencer_cost.py

Prints, per batch size, the median of 3 rounds of 500 batches: client CPU ms per event (time.process_time) and wall
ms per event.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid

import uvloop
from eva_common.realtime.sequence import RedisSequencer, SeqRequest
from eva_common.redis import create_redis


async def measure() -> None:
    redis = create_redis(os.environ["EVA_REDIS_URL"])
    sequencer = RedisSequencer(redis=redis, buffer_size=100, dedupe_ttl_seconds=60)
    tenant = f"bench-{uuid.uuid4().hex}"
    try:
        for size in (1, 10):
            figures = []
            for _ in range(3):
                cpu, wall, rounds = time.process_time(), time.perf_counter(), 500
                for _ in range(rounds):
                    requests = [SeqRequest(tenant, uuid.uuid4().hex, "message:new", {"id": "m", "body": "x" * 100})
                                for _ in range(size)]
                    assigned = await sequencer.assign_many(requests)
                    await sequencer.mark_emitted_many([(r.event_id, a.seq) for r, a in zip(requests, assigned,
                                                                                             strict=True)])
                figures.append(((time.process_time() - cpu) / rounds / size * 1000,
                                (time.perf_counter() - wall) / rounds / size * 1000))
            sys.stdout.write(f"batch {size}: client CPU ms/event {statistics.median(f[0] for f in figures):.3f}, "
                             f"wall ms/event {statistics.median(f[1] for f in figures):.3f}\n")
    finally:
        await redis.aclose()


if __name__ == "__main__":
    uvloop.run(measure())
