"""Faults of the inbound path (issue 4): SIGKILL messaging while its consumer lags; stop the Kafka broker while Meta
(the simulator) keeps posting. Afterwards the stored messages equal the distinct accepted wamids: nothing lost,
nothing doubled. These tests kill and restart processes of the test stack, so they run last (marker `disruptive`)
and bring back everything they stopped, also when they fail."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from e2e_support import Inbox, all_messages, eventually, guest_writes, new_wa_id, restore_stack
from eva_events.topics import WA_WEBHOOKS
from eva_testing.infra import test_infra

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parent.parent
MESSAGING_PID = ROOT / ".local" / "test" / "run" / "messaging.pid"
KAFKA_PID = ROOT / ".local" / "test" / "kafka" / "kafka.pid"
MESSAGING_GROUP = "messaging"  # the messaging service's consumer group on wa.webhooks.v1
SETTLE_SECONDS = 120.0  # how long the stack may take to store everything after a fault
ATTENDANT_WAIT = 15.0  # how long an attendant waits for a guest's message to show in the live inbox


def _pid(path: Path) -> int:
    pid = int(path.read_text().strip())
    os.kill(pid, 0)  # alive (raises otherwise)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), cwd=ROOT, text=True, capture_output=True, check=False, timeout=300)


async def consumer_lag(group: str, topic: str) -> int:
    """How many records of `topic` the consumer group has not committed yet (end offset - committed offset)."""
    bootstrap = test_infra().kafka_bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    partitions = [partition for partition in committed if partition.topic == topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends[partition] - max(committed[partition].offset, 0) for partition in partitions)


async def guest_burst(inbox: Inbox, guests: list[str], count: int, prefix: str,
                      retry: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` distinct guest messages posted by the simulator, spread over `guests`, a few at a time."""
    async def one(index: int) -> dict[str, Any]:
        response = await inbox.http.post(f"{inbox.stack.simulator}/_sim/guest-messages", json={
            "phoneNumberId": inbox.hotel.phone_number_id, "from": guests[index % len(guests)], "name": "Rui",
            "text": f"{prefix} #{index}", **({"retry": retry} if retry else {})}, timeout=120.0)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    results: list[dict[str, Any]] = []
    for start in range(0, count, 5):
        results.extend(await asyncio.gather(*(one(i) for i in range(start, min(start + 5, count)))))
    return results


async def stored_wamids(inbox: Inbox, conversations: set[str]) -> Counter[str]:
    stored: Counter[str] = Counter()
    for conversation_id in conversations:
        stored.update(m["wamid"] for m in await all_messages(inbox.http, inbox.stack, inbox.hotel.auth,
                                                               conversation_id))
    return stored


async def conversations_of(inbox: Inbox, guests: list[str]) -> set[str]:
    """The conversations of these guests, through GET /api/conversations (every page)."""
    found: set[str] = set()
    cursor: str | None = None
    for _ in range(50):
        response = await inbox.http.get(f"{inbox.stack.gateway}/api/conversations", headers=inbox.hotel.auth,
                                        params={"limit": "100", **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        found.update(c["id"] for c in page["items"] if (c.get("contact") or {}).get("waId") in guests)
        cursor = page.get("nextCursor")
        if not cursor:
            break
    return found


async def exactly_once(inbox: Inbox, guests: list[str], accepted: list[str]) -> Counter[str]:
    """Waits until every accepted wamid is stored; returns what is stored then (for the exactly-once check)."""
    async def probe() -> Counter[str] | None:
        stored = await stored_wamids(inbox, await conversations_of(inbox, guests))
        return stored if set(accepted) <= set(stored) else None

    stored: Counter[str] = await eventually(probe, timeout=SETTLE_SECONDS, interval=1.0)
    return stored


async def test_sigkill_messaging_while_it_lags_loses_and_doubles_nothing(inbox: Inbox, restored: None) -> None:
    guests = [new_wa_id() for _ in range(3)]
    messaging = _pid(MESSAGING_PID)
    burst = asyncio.ensure_future(guest_burst(inbox, guests, 60, "burst"))
    try:
        # mid-burst: once a third is acknowledged by ingest, messaging dies with whatever it was processing
        async def a_third_posted() -> bool:
            response = await inbox.http.get(f"{inbox.stack.simulator}/_sim/webhook-attempts",
                                            params={"phoneNumberId": inbox.hotel.phone_number_id})
            return sum(1 for a in response.json()["items"] if a["status"] == 200) >= 20

        await eventually(a_third_posted, timeout=60.0, interval=0.05)
        os.killpg(messaging, signal.SIGKILL)
        await eventually(lambda: asyncio.sleep(0, result=not _alive(messaging)), timeout=10.0)
        results = await asyncio.wait_for(burst, timeout=120.0)  # Meta keeps posting; ingest keeps acknowledging
    finally:
        if not burst.done():
            burst.cancel()
    accepted = [r["wamid"] for r in results if r["delivered"]]
    assert len(accepted) == 60, [r["attempts"] for r in results if not r["delivered"]]
    assert await consumer_lag(MESSAGING_GROUP, WA_WEBHOOKS) > 0  # deliveries wait in Kafka for the dead consumer

    await asyncio.to_thread(restore_stack)  # stack.py up starts what is missing: messaging
    assert _pid(MESSAGING_PID) != messaging

    stored = await exactly_once(inbox, guests, accepted)
    assert set(stored) == set(accepted)
    assert [wamid for wamid, copies in stored.items() if copies != 1] == []


async def test_kafka_down_gives_503s_and_metas_retries_are_stored_once(inbox: Inbox, restored: None) -> None:
    guests = [new_wa_id() for _ in range(2)]
    retry = {"maxAttempts": 40, "initialDelay": 0.5, "factor": 1.5, "maxDelay": 3.0, "timeout": 5.0}
    before = await guest_burst(inbox, guests, 4, "before the broker stops", retry)
    broker = _pid(KAFKA_PID)
    os.kill(broker, signal.SIGTERM)
    await eventually(lambda: asyncio.sleep(0, result=not _alive(broker)), timeout=90.0, interval=0.5)

    posting = asyncio.ensure_future(guest_burst(inbox, guests, 10, "while the broker is down", retry))
    try:
        async def refused() -> list[dict[str, Any]]:
            response = await inbox.http.get(f"{inbox.stack.simulator}/_sim/webhook-attempts",
                                            params={"phoneNumberId": inbox.hotel.phone_number_id})
            assert response.status_code == 200, response.text
            return [a for a in response.json()["items"] if a["status"] == 503]

        unavailable = await eventually(refused, timeout=30.0, interval=0.5)
        assert all(a["durationMs"] < 5_000 for a in unavailable)  # 503 within a short deadline, not a hang
        started = time.monotonic()
        await asyncio.to_thread(_run, sys.executable, "scripts/infra.py", "up", "--profile", "test")
        assert time.monotonic() - started < 300
        during = await asyncio.wait_for(posting, timeout=240.0)
    finally:
        if not posting.done():
            posting.cancel()

    results = before + during
    assert all(r["delivered"] for r in results), [r["attempts"] for r in results if not r["delivered"]]
    retried = [r for r in during if len(r["attempts"]) > 1]
    assert retried, "no delivery needed Meta's retries"
    assert all(a["status"] in (503, 200) or a["status"] is None for r in retried for a in r["attempts"])
    assert any(a["status"] == 503 for r in retried for a in r["attempts"])

    accepted = [r["wamid"] for r in results]
    stored = await exactly_once(inbox, guests, accepted)
    assert set(stored) == set(accepted)
    assert [wamid for wamid, copies in stored.items() if copies != 1] == []

    # the live inbox is back too (issue 9): every producer and consumer of the pipeline recovered from the restart
    sent = await guest_writes(inbox.http, inbox.stack, inbox.hotel.phone_number_id, "after the broker came back",
                              wa_id=guests[0])
    assert [a["status"] for a in sent["attempts"]] == [200], sent
    live = await inbox.socket.wait_for("message:new", lambda data: data.get("wamid") == sent["wamid"],
                                       timeout=ATTENDANT_WAIT)
    assert live["wamid"] == sent["wamid"]
