"""The per-number send governor on the whole stack: a hotel whose number is limited to 10 messages a second answers
60 guests as fast as it can; every message is sent, Meta (the simulator) never received more than 10 in any second
and refused none (130429)."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import StackUrls
from outbound_support import gather_limited, opened_desk

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RATE = 10
GUESTS = 60


async def test_a_number_limited_to_10_per_second_sends_60_replies_without_meta_refusing_one(
    stack: StackUrls,
) -> None:
    async with opened_desk(stack, throughput_mps=RATE) as desk:
        view = await desk.whatsapp()
        assert view["throughputMps"] == RATE, view
        guests = await gather_limited([desk.guest_writes(f"Guest {n} says hello") for n in range(GUESTS)], limit=10)
        assert len({g.conversation_id for g in guests}) == GUESTS
        created = await asyncio.gather(*(desk.accepted(g.conversation_id, "text", {"body": f"Hello guest {n}!"})
                                         for n, g in enumerate(guests)))
        await asyncio.gather(*(desk.status_event(m["id"], "SENT", timeout=60.0) for m in created))
        received = await desk.sent()
        assert sorted(item["request"]["biz_opaque_callback_data"] for item in received) == \
            sorted(f"eva:{m['id']}" for m in created)
        throughput = await desk.throughput()
        summary = {key: throughput[key] for key in ("limitMps", "received", "accepted", "rejected",
                                                     "maxReceivedInAnySecond", "maxAcceptedInAnySecond")}
        assert summary["limitMps"] == RATE, str(summary)
        assert summary["rejected"] == 0, str(summary)
        assert summary["maxReceivedInAnySecond"] <= RATE, str(summary)
        assert summary["received"] == GUESTS, str(summary)
