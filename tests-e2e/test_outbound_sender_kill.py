"""The sender dies between calling Meta and recording the answer (SIGKILL of the messaging service while Meta holds
its answer): the send reached Meta, and its statuses (which carry `biz_opaque_callback_data = eva:<message id>`)
tell the restarted service so; the message ends READ and Meta received it exactly once, also after the dead
sender's lease ran out. Kills and restarts a process of the test stack, so it runs last (marker `disruptive`)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from e2e_support import StackUrls, restore_stack
from outbound_support import opened_desk, outbound_job_state, statuses_of, until

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parent.parent
MESSAGING_PID = ROOT / ".local" / "test" / "run" / "messaging.pid"
SLOW_ACCEPT_SECONDS = 20.0  # Meta holds its answer this long: the sender is killed before it gets it
LEASE_SECONDS = 60.0  # EVA_SEND_LEASE_SECONDS: a dead sender's job is taken over after this long


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text().lower()


async def test_a_sender_killed_before_metas_answer_does_not_send_again(stack: StackUrls, restored: None) -> None:
    async with opened_desk(stack) as desk:
        guest = await desk.guest_writes("Is the airport shuttle running?")
        await desk.fault(kind="slow_accept", delaySeconds=SLOW_ACCEPT_SECONDS, times=1)
        message = await desk.accepted(guest.conversation_id, "text", {"body": "Yes, every 30 minutes."})
        await desk.sent_once(message["id"], timeout=15.0)  # Meta has it; its answer is on hold

        messaging = int(MESSAGING_PID.read_text().strip())
        os.killpg(messaging, signal.SIGKILL)
        await until(lambda: asyncio.sleep(0, result=not _alive(messaging)), timeout=10.0)
        assert await outbound_job_state(desk.hotel.tenant["id"], message["id"]) == "sending"

        await asyncio.to_thread(restore_stack)  # stack.py up starts what is missing: messaging
        assert int(MESSAGING_PID.read_text().strip()) != messaging

        shown = await desk.message(guest.conversation_id, message["id"], lambda m: m["status"] == "READ",
                                   timeout=90.0)
        received = await desk.sent_once(message["id"])
        assert shown["wamid"] == received["wamid"], (shown, received)
        assert statuses_of(shown) == ["SENT", "DELIVERED", "READ"], shown
        # the restarted sender takes the dead one's job over once its lease runs out, and finds it sent
        await until(lambda: _done(desk.hotel.tenant["id"], message["id"]), timeout=LEASE_SECONDS + 60.0)
        assert len(await desk.sends_of(message["id"])) == 1
        assert (await desk.message(guest.conversation_id, message["id"]))["status"] == "READ"


async def _done(tenant_id: str, message_id: str) -> bool:
    return await outbound_job_state(tenant_id, message_id) == "done"
