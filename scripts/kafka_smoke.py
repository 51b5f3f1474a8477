"""aiokafka smoke test against a running broker (the gate for the Kafka version we run).

    uv run python scripts/kafka_smoke.py [--bootstrap 127.0.0.1:29092] [--quick]

Full run, on throwaway topics (deleted at the end):
  metadata round trip; a 2-partition topic with max.message.bytes=4194304; an idempotent
  producer sending small records plus one ~3 MB record; one consumer that reads everything and
  commits manually; a second consumer joining the same group (rebalance to one partition each),
  new records read by their partition owner and committed; consume-transform-produce in a
  transaction with send_offsets_to_transaction (plus an aborted transaction that a
  read_committed reader must not see).
``--quick``: metadata round trip plus one tiny produce/consume.
Exit code 0 on success; 1 with the failing step on stderr otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

MAX_MESSAGE_BYTES = 4194304
BIG_VALUE_BYTES = 3 * 1024 * 1024
FETCH_BYTES = 8 * 1024 * 1024
STEP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class SmokeError(RuntimeError):
    pass


class Steps:
    """Names the step that is running, so a failure says where it happened."""

    def __init__(self) -> None:
        self.current = "start"
        self.started = time.monotonic()

    def begin(self, name: str) -> None:
        self.current = name
        self.started = time.monotonic()

    def done(self, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started
        extra = f": {detail}" if detail else ""
        out(f"  ok  {self.current} ({elapsed:.2f}s){extra}")


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeError(message)


# --------------------------------------------------------------------------- clients


def producer(bootstrap: str, **extra: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=20000,
        **extra,
    )


def consumer(bootstrap: str, *topics: str, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=2 * FETCH_BYTES,
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
        request_timeout_ms=20000,
        **extra,
    )


async def stop_all(clients: Sequence[Any]) -> None:
    """Stop clients with a time limit (aiokafka#773: stop() can hang)."""
    for client in reversed(clients):
        stop = client.close if isinstance(client, AIOKafkaAdminClient) else client.stop
        try:
            await asyncio.wait_for(stop(), STOP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - cleanup must go on
            sys.stderr.write(f"warning: stopping {type(client).__name__} failed: {exc!r}\n")


async def create_topics(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    response = await admin.create_topics(topics)
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        if code:
            raise SmokeError(f"create topic {topic}: {for_code(code).__name__} {entry[2:] or ''}")


async def delete_topics(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    response = await admin.delete_topics(topics)
    errors = [(t, for_code(c).__name__) for t, c, *_ in response.topic_error_codes if c]
    check(not errors, f"delete topics: {errors}")


async def until(what: str, predicate: Callable[[], Awaitable[bool]], timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise SmokeError(f"timed out after {timeout:.0f}s waiting for {what}")


Record = tuple[int, int, bytes | None, bytes]  # partition, offset, key, value


async def poll(c: AIOKafkaConsumer, into: list[Record]) -> None:
    batches = await c.getmany(timeout_ms=200)
    for records in batches.values():
        into.extend((r.partition, r.offset, r.key, r.value) for r in records)


class CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what was consumed before partitions move to another member."""

    def __init__(self, c: AIOKafkaConsumer, consumed: dict[TopicPartition, int]) -> None:
        self.consumer = c
        self.consumed = consumed
        self.revocations = 0

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.revocations += 1
        offsets = {tp: off for tp, off in self.consumed.items() if tp in revoked}
        if offsets:
            await self.consumer.commit(offsets)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


# --------------------------------------------------------------------------- quick


async def quick(bootstrap: str, steps: Steps) -> None:
    topic = f"eva-smoke-quick-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    clients: list[Any] = [admin]
    created = False
    try:
        steps.begin("metadata round trip")
        await admin.start()
        cluster = await admin.describe_cluster()
        check(bool(cluster.get("brokers")), f"no brokers in metadata: {cluster}")
        steps.done(f"{len(cluster['brokers'])} broker(s)")

        steps.begin("tiny produce/consume")
        await create_topics(admin, [NewTopic(topic, 1, 1)])
        created = True
        prod = producer(bootstrap)
        clients.append(prod)
        await prod.start()
        meta = await prod.send_and_wait(topic, b"ping", key=b"k")
        cons = consumer(bootstrap)
        clients.append(cons)
        await cons.start()
        tp = TopicPartition(topic, 0)
        cons.assign([tp])
        cons.seek(tp, meta.offset)
        record = await asyncio.wait_for(cons.getone(), STEP_TIMEOUT_S)
        check(record.value == b"ping", f"read back {record.value!r}")
        steps.done()
    finally:
        await stop_all(clients[1:])
        if created:
            await delete_topics(admin, [topic])
        await stop_all(clients[:1])


# --------------------------------------------------------------------------- full


class FullRun:
    def __init__(self, bootstrap: str, steps: Steps) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.steps = steps
        self.topic = f"eva-smoke-{run_id}"
        self.out_topic = f"eva-smoke-{run_id}-out"
        self.group = f"eva-smoke-{run_id}"
        self.txn_group = f"eva-smoke-{run_id}-txn"
        self.txn_id = f"eva-smoke-{run_id}-tx"
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
        self.clients: list[Any] = []
        self.expected: dict[tuple[int, int], bytes] = {}  # (partition, offset) -> value digest
        self.cons_a: Any = None  # group member A, kept across the rebalance steps
        self.listener_a: CommitOnRevoke | None = None

    async def run(self) -> None:
        created = False
        try:
            await self.metadata()
            await self.create()
            created = True
            prod = await self.start(producer(self.bootstrap))
            await self.produce(prod, "phase1", small=6, big=True)
            first = await self.single_member_commit()
            await self.rebalance_and_commit(prod, first)
            await self.transaction()
        finally:
            await stop_all(self.clients)
            if created:
                await delete_topics(self.admin, [self.topic, self.out_topic])
            await stop_all([self.admin])

    async def start(self, client: Any) -> Any:
        self.clients.append(client)
        await client.start()
        return client

    async def metadata(self) -> None:
        self.steps.begin("metadata round trip")
        await self.admin.start()
        cluster = await self.admin.describe_cluster()
        check(bool(cluster.get("brokers")), f"no brokers in metadata: {cluster}")
        self.steps.done(f"brokers={[b['node_id'] for b in cluster['brokers']]}")

    async def create(self) -> None:
        self.steps.begin("create topics (2 partitions, max.message.bytes=4194304)")
        config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        await create_topics(
            self.admin,
            [NewTopic(self.topic, 2, 1, topic_configs=config), NewTopic(self.out_topic, 1, 1, topic_configs=config)],
        )
        self.steps.done()

    async def produce(self, prod: AIOKafkaProducer, tag: str, small: int, big: bool) -> None:
        self.steps.begin(f"idempotent produce ({tag}: {small} small{' + one 3 MB' if big else ''})")
        values = [f"{tag}-{i}".encode() for i in range(small)]
        if big:
            values.append(os.urandom(BIG_VALUE_BYTES))
        for i, value in enumerate(values):
            meta = await prod.send_and_wait(self.topic, value, key=f"{tag}-{i}".encode(), partition=i % 2)
            self.expected[(meta.partition, meta.offset)] = hashlib.sha256(value).digest()
        per_partition = {p: sorted(o for q, o in self.expected if q == p) for p in (0, 1)}
        for p, offsets in per_partition.items():
            check(offsets == list(range(len(offsets))), f"partition {p} offsets not contiguous: {offsets}")
        self.steps.done(f"offsets per partition {[len(v) for v in per_partition.values()]}")

    def verify(self, records: list[Record], keys: set[tuple[int, int]]) -> None:
        got = {(p, o): hashlib.sha256(v).digest() for p, o, _, v in records}
        check(len(got) == len(records), "duplicate deliveries")
        check(set(got) == keys, f"read back {sorted(got)}, expected {sorted(keys)}")
        bad = [k for k in keys if got[k] != self.expected[k]]
        check(not bad, f"payload mismatch at {bad}")

    async def end_offsets(self, topic: str, partitions: int) -> dict[TopicPartition, int]:
        probe = await self.start(consumer(self.bootstrap))
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        result: dict[TopicPartition, int] = await probe.end_offsets(tps)
        return result

    async def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self.admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}

    async def single_member_commit(self) -> dict[TopicPartition, int]:
        self.steps.begin("consumer A reads all (incl. 3 MB) and commits manually")
        consumed: dict[TopicPartition, int] = {}
        cons_a = consumer(self.bootstrap, group_id=self.group)
        self.listener_a = CommitOnRevoke(cons_a, consumed)
        cons_a.subscribe([self.topic], listener=self.listener_a)
        self.cons_a = await self.start(cons_a)
        records: list[Record] = []

        async def all_read() -> bool:
            await poll(cons_a, records)
            return len(records) >= len(self.expected)

        await until("consumer A to read phase 1", all_read)
        self.verify(records, set(self.expected))
        for p, o, _, _ in records:
            tp = TopicPartition(self.topic, p)
            consumed[tp] = max(consumed.get(tp, 0), o + 1)
        await cons_a.commit(dict(consumed))
        committed = await self.group_offsets(self.group)
        check(committed == consumed, f"committed {committed} != consumed {consumed}")
        self.steps.done(f"committed {sorted((tp.partition, o) for tp, o in consumed.items())}")
        return dict(consumed)

    async def rebalance_and_commit(self, prod: AIOKafkaProducer, first: dict[TopicPartition, int]) -> None:
        self.steps.begin("consumer B joins: rebalance to one partition each")
        cons_a = self.cons_a
        cons_b = await self.start(consumer(self.bootstrap, self.topic, group_id=self.group))
        stray: list[Record] = []

        async def split() -> bool:
            await asyncio.gather(poll(cons_a, stray), poll(cons_b, stray))
            a, b = cons_a.assignment(), cons_b.assignment()
            return len(a) == 1 and len(b) == 1 and not (a & b)

        await until("the group to rebalance", split)
        check(not stray, f"committed records delivered again after the rebalance: {stray[:3]}")
        check(self.listener_a is not None and self.listener_a.revocations >= 1, "consumer A saw no revocation")
        self.steps.done(
            f"A={sorted(tp.partition for tp in cons_a.assignment())} "
            f"B={sorted(tp.partition for tp in cons_b.assignment())}"
        )

        before = set(self.expected)
        await self.produce(prod, "phase2", small=4, big=False)
        self.steps.begin("each member reads its partition and commits")
        new_keys = set(self.expected) - before
        got_a: list[Record] = []
        got_b: list[Record] = []

        async def both_read() -> bool:
            await asyncio.gather(poll(cons_a, got_a), poll(cons_b, got_b))
            return len(got_a) + len(got_b) >= len(new_keys)

        await until("phase 2 records", both_read)
        self.verify(got_a + got_b, new_keys)
        for cons, got in ((cons_a, got_a), (cons_b, got_b)):
            owned = {tp.partition for tp in cons.assignment()}
            check(all(p in owned for p, *_ in got), "a member read a partition it does not own")
            offsets = {TopicPartition(self.topic, p): o + 1 for p, o, *_ in sorted(got)}
            if offsets:
                await cons.commit(offsets)
        ends = await self.end_offsets(self.topic, 2)
        committed = await self.group_offsets(self.group)
        check(committed == ends, f"group offsets {committed} != end offsets {ends} (first commit {first})")
        self.steps.done(f"A read {len(got_a)}, B read {len(got_b)}, group offsets at end")

    async def transaction(self) -> None:
        self.steps.begin("transaction: consume-transform-produce + send_offsets_to_transaction")
        src = await self.start(
            consumer(self.bootstrap, self.topic, group_id=self.txn_group, isolation_level="read_committed")
        )
        records: list[Record] = []

        async def all_read() -> bool:
            await poll(src, records)
            return len(records) >= len(self.expected)

        await until("the transactional reader", all_read)
        txp = await self.start(producer(self.bootstrap, transactional_id=self.txn_id))
        await txp.begin_transaction()
        await txp.send_and_wait(self.out_topic, b"aborted")
        await txp.abort_transaction()
        offsets = {TopicPartition(self.topic, p): o + 1 for p, o, *_ in sorted(records)}
        async with txp.transaction():
            for p, o, _, _ in records:
                await txp.send(self.out_topic, f"seen:{p}:{o}".encode())
            await txp.send_offsets_to_transaction(offsets, self.txn_group)

        reader = await self.start(consumer(self.bootstrap, isolation_level="read_committed"))
        tp_out = TopicPartition(self.out_topic, 0)
        reader.assign([tp_out])
        await reader.seek_to_beginning(tp_out)
        out_records: list[Record] = []

        async def committed_visible() -> bool:
            await poll(reader, out_records)
            return len(out_records) >= len(records)

        await until("committed transactional records", committed_visible)
        await poll(reader, out_records)
        values = [v for *_, v in out_records]
        check(b"aborted" not in values, "read_committed reader saw an aborted record")
        check(len(values) == len(records), f"expected {len(records)} transformed records, got {len(values)}")

        async def offsets_committed() -> bool:
            return await self.group_offsets(self.txn_group) == offsets

        await until("transactional offsets of the group", offsets_committed, timeout=15)
        self.steps.done(f"{len(values)} records committed, aborted record hidden, offsets {len(offsets)} tp")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("EVA_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--quick", action="store_true", help="metadata round trip + tiny produce/consume only")
    parser.add_argument("--timeout", type=float, default=None, help="overall limit in seconds")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, steps: Steps) -> None:
    timeout = args.timeout or (45.0 if args.quick else 180.0)
    job = quick(args.bootstrap, steps) if args.quick else FullRun(args.bootstrap, steps).run()
    await asyncio.wait_for(job, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    mode = "quick" if args.quick else "full"
    logging.basicConfig(level=logging.WARNING, format="  (log) %(name)s %(levelname)s: %(message)s")
    out(f"kafka smoke ({mode}) against {args.bootstrap}")
    steps = Steps()
    started = time.monotonic()
    try:
        asyncio.run(main_async(args, steps))
    except Exception as exc:  # noqa: BLE001 - report any failure with its step
        detail = "overall timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        sys.stderr.write(f"kafka smoke FAILED at step '{steps.current}': {detail}\n")
        return 1
    out(f"kafka smoke OK ({mode}) in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
