"""Issue 5 with the frontend's own client (socket.io-client@4 under Node): a dropped connection resumes on the
other gateway replica without a gap. `resume {lastSeq}` replays exactly what the client missed, in order, as the
original events, then acks `{ok: true, replayed: N}`; a `lastSeq` the buffer cannot serve gets
`{ok: false, code: "RESYNC_REQUIRED"}` and a `resync:required` event; a resume reads only the caller's tenant."""

from __future__ import annotations

import httpx
import pytest
from e2e_support import StackUrls, register_hotel
from js_client import JsDriver
from realtime_support import assert_consecutive, guest_message, seqs, settled, wamid_is

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_a_dropped_client_resumes_on_the_other_replica_without_a_gap(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack)
    watcher = js.socket("watcher")  # stays connected throughout: the original events, as sent live
    await watcher.connect(stack.gateway, hotel.access_token)
    before = js.socket("before-the-drop")
    await before.connect(stack.gateway, hotel.access_token)
    opening = await guest_message(http, stack, hotel, before, "first message, seen live")
    await settled(before, opening)
    await before.disconnect()
    seen_before = seqs(before.seq_events())
    assert_consecutive(seen_before, "before the drop")
    last_seq = seen_before[-1]

    guest = opening.event["contact"]["waId"]
    missed = [await guest_message(http, stack, hotel, watcher, f"missed message {n}", wa_id=guest) for n in (1, 2, 3)]
    await settled(watcher, missed[-1])  # nothing more is on its way: all the missed events are in the buffer

    after = js.socket("after-the-drop")
    await after.connect(stack.gateway_replica, hotel.access_token)  # the other replica
    ack, mark = await after.emit_acked_at("resume", {"lastSeq": last_seq})
    assert ack["ok"] is True and isinstance(ack["replayed"], int), ack
    replayed = after.seq_events(upto=mark)
    assert ack["replayed"] == len(replayed) >= 6, (ack, seqs(replayed))  # 3 x (message:new, conversation:updated)
    assert_consecutive(seqs(replayed), "replayed")
    assert seqs(replayed)[0] == last_seq + 1 and seqs(replayed)[-1] == max(seqs(watcher.seq_events()))

    # the three missed messages, in order, exactly as the watcher got them live (same names, payloads, seq)
    assert [r.data["wamid"] for r in replayed if r.event == "message:new"] == [m.wamid for m in missed]
    live = {int(r.data["seq"]): (r.event, r.data) for r in watcher.seq_events()}
    for item in replayed:
        assert live.get(item.data["seq"]) == (item.event, item.data), item

    # One more message arrives live after the resume: the whole history before + after has no gap and no repeat.
    latest = await guest_message(http, stack, hotel, after, "after the resume", wa_id=guest)
    assert latest.seq > max(seqs(replayed))
    watcher_last = await watcher.wait_for("message:new", wamid_is(latest.wamid))
    assert watcher_last == latest.event
    combined = seen_before + seqs(after.seq_events())
    assert_consecutive(combined, "before the drop + replay + live")
    assert sorted(set(combined)) == combined
    assert after.events("resync:required") == []


async def test_a_resume_the_buffer_cannot_serve_requires_a_resync(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel = await register_hotel(http, stack)
    socket = js.socket("resumer")
    await socket.connect(stack.gateway_replica, hotel.access_token)
    message = await guest_message(http, stack, hotel, socket, "a few events only")

    # ahead of the tenant's sequence: nothing can be replayed, the client must refetch over REST
    ack = await socket.emit_with_ack("resume", {"lastSeq": message.seq + 1000})
    assert ack == {"ok": False, "code": "RESYNC_REQUIRED"}, ack
    resync = await socket.wait_for("resync:required")
    assert isinstance(resync["currentSeq"], int) and resync["currentSeq"] >= message.seq
    assert (await socket.state())["connected"]

    # the socket carries on from the current seq: a new message still arrives live, once
    fresh = await guest_message(http, stack, hotel, socket, "after the resync", wa_id=message.event["contact"]["waId"])
    assert fresh.seq > resync["currentSeq"]
    assert [d["wamid"] for d in socket.events("message:new")].count(fresh.wamid) == 1

    # up to date (once the conversation's update that follows the message is in too): nothing to replay
    await settled(socket, fresh)
    current = max(seqs(socket.seq_events()))
    assert await socket.emit_with_ack("resume", {"lastSeq": current}) == {"ok": True, "replayed": 0}
    for bad in ({"lastSeq": -1}, {"lastSeq": "3"}, {"lastSeq": 1.5}, {"lastSeq": True}, {}, "7", None):
        assert await socket.emit_with_ack("resume", bad) == {"ok": False, "code": "VALIDATION_FAILED"}, bad


async def test_resume_needs_a_signed_in_socket_and_reads_only_its_tenant(
    stack: StackUrls, http: httpx.AsyncClient, js: JsDriver
) -> None:
    hotel_a = await register_hotel(http, stack)
    hotel_b = await register_hotel(http, stack)
    a, b = js.socket("a"), js.socket("b")
    await a.connect(stack.gateway, hotel_a.access_token)
    await b.connect(stack.gateway_replica, hotel_b.access_token)
    a_message = await guest_message(http, stack, hotel_a, a, "for A")
    b_message = await guest_message(http, stack, hotel_b, b, "for B")
    await settled(b, b_message)

    anonymous = js.socket("anonymous")
    await anonymous.connect(stack.gateway)
    assert await anonymous.emit_with_ack("resume", {"lastSeq": 0}) == {"ok": False, "code": "UNAUTHENTICATED"}
    assert anonymous.events() == []

    # B resumes from the very start: all of B's history, none of A's
    fresh_b = js.socket("b-resumer")
    await fresh_b.connect(stack.gateway, hotel_b.access_token)
    ack, mark = await fresh_b.emit_acked_at("resume", {"lastSeq": 0})
    assert ack["ok"] is True and ack["replayed"] == len(fresh_b.seq_events(upto=mark)) >= 1, ack
    replayed = fresh_b.seq_events(upto=mark)
    assert_consecutive(seqs(replayed), "B's history")
    assert seqs(replayed) == seqs(b.seq_events())  # B's whole history, as B's live socket got it
    assert seqs(replayed)[0] == 1
    assert b_message.wamid in [r.data.get("wamid") for r in replayed]
    assert all(a_message.conversation_id not in repr(r.data) and a_message.wamid not in repr(r.data)
               for r in fresh_b.received())
