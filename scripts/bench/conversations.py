"""ListConversations latency at 10 thousand and at 1 million messages (100 thousand conversations).

Loopback only, bounded. Seeds one tenant per size with SQL (generate_series, as the owner role), each in a scratch
database of its own on the PostgreSQL of a local stack (`scripts/stack.py env --profile <profile>`; owner
eva_owner), migrated with the conversation service's own Alembic history, then serves each with the conversation
service's real gRPC server (its composition root, interceptor and token verification; only the Kafka/Redis workers
are not started, the list reads neither) on a loopback port and measures ListConversations through them with a user
token of each tenant, one request of each size in turn (so both sizes see the same load on a shared machine):

- small: --small-conversations (1,000) conversations that received --small-messages (10,000) messages,
- large: --large-conversations (100,000) conversations that received --large-messages (1,000,000) messages.

"Messages" are the last-message updates the messaging events cause (`UPDATE conversations SET last_message_at ...`
in rounds, as the consumer does), so the table carries their history (dead tuples, then VACUUM ANALYZE as autovacuum
would). Cases: the first page, a deep page (a cursor 90 % down the inbox), status=pending, one assignee, a tag on one
conversation in 20, a search for one guest by name, and a broad search (a tenth of the guests match). Prints
p50/p99 per case and size and the large/small ratio; the issue asks for ratio <= 1.5.

    uv run python scripts/bench/conversations.py                      # the dev stack's PostgreSQL (make up)
    uv run python scripts/bench/conversations.py --profile test       # the test profile's PostgreSQL
    uv run python scripts/bench/conversations.py --large-conversations 20000 --large-messages 200000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "services" / "conversation"
MAX_CONVERSATIONS = 200_000
MAX_MESSAGES = 2_000_000
MAX_REQUESTS = 2_000
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Size:
    label: str
    conversations: int
    messages: int
    tenant_id: str


def stack_env(profile: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "env", "--profile", profile],
                         check=True, capture_output=True, text=True).stdout
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


async def seed(dsn: str, size: Size) -> None:
    """N contacts + conversations (10 % pending, 20 % resolved, a quarter assigned to one of 20 agents), then
    `messages` last-message updates in rounds of at most one per conversation, then VACUUM ANALYZE."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT set_config('app.tenant_id', $1, false)", size.tenant_id)
        await connection.execute(
            """
            WITH contact AS (
                INSERT INTO contacts (id, tenant_id, wa_id, name, phone, created_at, updated_at)
                SELECT gen_random_uuid(), $1, (4915000000000 + i)::text,
                       (ARRAY['Anna', 'Bruno', 'Carla', 'Diego', 'Elena', 'Farid', 'Greta', 'Hugo', 'Ines',
                              'Jonas'])[1 + i % 10] || ' ' || upper(substr(md5(i::text), 1, 6)),
                       '+' || (4915000000000 + i), now(), now()
                FROM generate_series(1, $2::int) AS i
                RETURNING id, wa_id
            )
            INSERT INTO conversations (id, tenant_id, contact_id, status, assigned_to, priority, last_message_at,
                                       unread_count, created_at, updated_at)
            SELECT gen_random_uuid(), $1, contact.id,
                   CASE WHEN n % 10 = 0 THEN 'pending' WHEN n % 10 IN (1, 2) THEN 'resolved' ELSE 'open' END,
                   CASE WHEN n % 4 = 0 THEN 'agent-' || (n % 20) END, 'normal',
                   timestamptz '2026-01-01' + (n * interval '1 second'), 0, now(), now()
            FROM (SELECT id, wa_id::bigint - 4915000000000 AS n FROM contact) AS contact
            """,
            size.tenant_id, size.conversations,
        )
        await connection.execute("ANALYZE contacts")  # fresh statistics: the tag join below then hashes
        await connection.execute("ANALYZE conversations")
        # one conversation in 20 carries the tag "vip"
        await connection.execute(
            """
            WITH tag AS (INSERT INTO tags (id, tenant_id, name, color) VALUES (gen_random_uuid(), $1, 'vip', '#ff0000')
                         RETURNING id)
            INSERT INTO conversation_tags (conversation_id, tag_id, tenant_id)
            SELECT c.id, tag.id, $1 FROM conversations c JOIN contacts k ON k.id = c.contact_id, tag
            WHERE c.tenant_id = $1 AND (k.wa_id::bigint - 4915000000000) % 20 = 0
            """,
            size.tenant_id,
        )
        remaining, round_ = size.messages, 0
        while remaining > 0:
            batch = min(remaining, size.conversations)
            round_ += 1
            # one message each for `batch` conversations: last activity moves forward by a random amount
            await connection.execute(
                """
                UPDATE conversations SET last_message_at = last_message_at + (random() * interval '30 days'),
                       last_message_preview = 'message ' || $2::int, unread_count = unread_count + 1,
                       updated_at = now()
                WHERE tenant_id = $1 AND ($3::int >= $4::int
                      OR id IN (SELECT id FROM conversations WHERE tenant_id = $1 LIMIT $3))
                """,
                size.tenant_id, round_, batch, size.conversations,
            )
            remaining -= batch
        for table in ("contacts", "conversations", "tags", "conversation_tags"):
            await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()


async def deep_cursor(dsn: str, size: Size) -> str:
    from conversation_service.service import INBOX_CURSOR
    from eva_common.paging import Position, encode_cursor

    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", size.tenant_id)
            row = await connection.fetchrow(
                "SELECT last_message_at, id FROM conversations WHERE tenant_id = $1 "
                "ORDER BY last_message_at DESC, id DESC OFFSET $2 LIMIT 1",
                size.tenant_id, int(size.conversations * 0.9))
    finally:
        await connection.close()
    return encode_cursor(Position(INBOX_CURSOR, str(row["id"]), row["last_message_at"].astimezone(UTC)))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(timings: list[float], items: int) -> dict[str, float]:
    return {"p50_ms": statistics.median(timings), "p99_ms": percentile(timings, 0.99), "items": items}


async def measure_interleaved(calls: dict[str, Any], *, requests: int, warmup: int) -> dict[str, dict[str, float]]:
    """Alternates one request of each size (small, large, small, ...), so both see the same machine load: on a
    shared, noisy machine the ratio stays meaningful even when the absolute figures move."""
    timings: dict[str, list[float]] = {label: [] for label in calls}
    items: dict[str, int] = dict.fromkeys(calls, 0)
    for index in range(warmup + requests):
        for label, call in calls.items():
            started = time.perf_counter()
            response = await call()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                timings[label].append(elapsed)
                items[label] = len(response.items)
    return {label: summary(timings[label], items[label]) for label in calls}


def cases(conversation_pb2: Any, cursor: str) -> dict[str, Any]:
    return {
        "first page": conversation_pb2.ListConversationsRequest(limit=50),
        "deep page (90 %)": conversation_pb2.ListConversationsRequest(limit=50, cursor=cursor),
        "status=pending": conversation_pb2.ListConversationsRequest(limit=50, status="pending"),
        "assignee": conversation_pb2.ListConversationsRequest(limit=50, assigned_to="agent-4"),
        "tag": conversation_pb2.ListConversationsRequest(limit=50, tag="vip"),
        # a guest looked up by name: the 777th guest's name suffix (a selective search)
        "q (one guest)": conversation_pb2.ListConversationsRequest(limit=50, q=hashlib.md5(b"777").hexdigest()[:6]),
        # a broad search: every guest called Anna (a tenth of the tenant)
        "q (broad)": conversation_pb2.ListConversationsRequest(limit=50, q="anna"),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from conversation_service.main import ConversationApp
    from conversation_service.settings import Settings
    from eva.conversation.v1 import conversation_pb2, conversation_pb2_grpc
    from eva_testing.db import migrated_database
    from eva_testing.infra import TestInfra
    from eva_testing.tokens import TestTokenIssuer

    env = stack_env(args.profile)
    host = env.get("EVA_PG_HOST", "127.0.0.1")
    if host not in LOOPBACK:
        raise SystemExit(f"refusing a non-loopback PostgreSQL host: {host}")
    infra = TestInfra(pg_host=host, pg_port=int(env["EVA_PG_PORT"]),
                      owner_user=env.get("EVA_PG_OWNER_USER", "eva_owner"),
                      owner_password=env.get("EVA_PG_OWNER_PASSWORD", "eva_owner"),
                      app_user=env.get("EVA_PG_APP_USER", "eva_app"),
                      app_password=env.get("EVA_PG_APP_PASSWORD", "eva_app"),
                      redis_url=env.get("EVA_REDIS_URL", "redis://127.0.0.1:6379/0"),
                      kafka_bootstrap=env.get("EVA_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    sizes = [Size("small", args.small_conversations, args.small_messages, str(uuid.uuid4())),
             Size("large", args.large_conversations, args.large_messages, str(uuid.uuid4()))]
    issuer = TestTokenIssuer()
    results: dict[str, Any] = {"profile": args.profile, "requests": args.requests, "sizes": {}}
    async with contextlib.AsyncExitStack() as stack:
        stubs: dict[str, Any] = {}
        requests: dict[str, dict[str, Any]] = {}
        metadata: dict[str, Any] = {}
        for size in sizes:  # each size in a database of its own, served by a conversation server of its own
            database = await stack.enter_async_context(
                migrated_database(infra, SERVICE_DIR, f"conversation_bench_{size.label}"))
            settings = Settings(database_url=database.app_url, grpc_port=0, http_port=0, environment="test",
                                redis_url=infra.redis_url, kafka_bootstrap=infra.kafka_bootstrap, db_pool_size=4)
            app = ConversationApp(settings, verifier=issuer.verifier())
            await app.grpc_server.start()  # the list needs only PostgreSQL: no consumer, relay or HTTP here
            stack.push_async_callback(app.engine.dispose)
            stack.push_async_callback(app.grpc_server.stop, 0)
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}"))
            stubs[size.label] = conversation_pb2_grpc.ConversationServiceStub(channel)
            started = time.monotonic()
            await seed(database.owner_dsn, size)
            results["sizes"][size.label] = {"conversations": size.conversations, "messages": size.messages,
                                            "seed_seconds": round(time.monotonic() - started, 1), "cases": {}}
            token = issuer.user_token(user_id="bench", tenant_id=size.tenant_id, role="admin")
            metadata[size.label] = (("authorization", f"Bearer {token}"),)
            requests[size.label] = cases(conversation_pb2, await deep_cursor(database.owner_dsn, size))
        for name in requests["small"]:
            calls = {label: functools.partial(stubs[label].ListConversations, requests[label][name],
                                              metadata=metadata[label], timeout=30) for label in stubs}
            figures = await measure_interleaved(calls, requests=args.requests, warmup=args.warmup)
            for label, figure in figures.items():
                results["sizes"][label]["cases"][name] = figure
    small, large = results["sizes"]["small"]["cases"], results["sizes"]["large"]["cases"]
    results["ratios"] = {name: {"p50": large[name]["p50_ms"] / small[name]["p50_ms"],
                                "p99": large[name]["p99_ms"] / small[name]["p99_ms"]} for name in small}
    results["measured_at"] = datetime.now(UTC).isoformat()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="dev", choices=("dev", "test"))
    parser.add_argument("--small-conversations", type=int, default=1_000)
    parser.add_argument("--small-messages", type=int, default=10_000)
    parser.add_argument("--large-conversations", type=int, default=100_000)
    parser.add_argument("--large-messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name, value, bound in (("conversations", max(args.small_conversations, args.large_conversations),
                                MAX_CONVERSATIONS),
                               ("messages", max(args.small_messages, args.large_messages), MAX_MESSAGES),
                               ("requests", args.requests, MAX_REQUESTS)):
        if not 1 <= value <= bound:
            parser.error(f"{name} must be between 1 and {bound}")
    results = asyncio.run(run(args))
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    lines = [f"ListConversations through the conversation gRPC server ({args.requests} requests per case and size,"
             f" {args.warmup} warm-up, the two sizes interleaved), PostgreSQL of the {args.profile} profile"]
    for label, size in results["sizes"].items():
        lines.append(f"\n{label}: {size['conversations']:,} conversations, {size['messages']:,} messages "
                     f"(seeded in {size['seed_seconds']} s)")
        for name, figure in size["cases"].items():
            lines.append(f"  {name:<18} p50 {figure['p50_ms']:7.2f} ms   p99 {figure['p99_ms']:7.2f} ms   "
                         f"({figure['items']} items)")
    lines.append("\nlarge / small")
    for name, ratio in results["ratios"].items():
        lines.append(f"  {name:<18} p50 x{ratio['p50']:.2f}   p99 x{ratio['p99']:.2f}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
