"""Reading and typing through the public gateway on the whole stack: an attendant reading a guest's message resets the
conversation's unread count live and sends Meta's read receipt for that wamid, unless the hotel's policy is `never`;
`typing:start` in a joined conversation sends Meta's typing indicator once, debounced for 25 seconds."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import StackUrls
from outbound_support import Desk, opened_desk, until, wait_after

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def read_again(desk: Desk, conversation_id: str) -> Any:
    return lambda data: data.get("id") == conversation_id and data.get("unreadCount") == 0


async def test_reading_a_message_resets_the_unread_count_and_sends_metas_receipt(stack: StackUrls) -> None:
    async with opened_desk(stack) as desk:
        first = await desk.guest_writes("Hello, one question")
        second = await desk.guest_writes("And a second one", wa_id=first.wa_id)
        await desk.socket.wait_for("conversation:updated", lambda d: d.get("id") == first.conversation_id
                                   and d.get("unreadCount") == 2)
        mark = len(desk.socket.events)
        response = await desk.http.patch(f"{stack.gateway}/api/messages/{second.message_id}/read", headers=desk.auth)
        assert response.status_code == 200, response.text
        read = response.json()
        assert read["conversationId"] == first.conversation_id and read["messageId"] == second.message_id, read
        assert read["marked"] == 2 and read["receiptSent"] is True, read
        await wait_after(desk.socket, mark, "conversation:updated", read_again(desk, first.conversation_id))
        assert (await desk.conversation(first.conversation_id))["unreadCount"] == 0

        async def receipt() -> list[dict[str, Any]]:
            return await desk.read_receipts()

        receipts = await until(receipt)
        assert [(r["messageId"], r["typingIndicator"]) for r in receipts] == [(second.wamid, False)], receipts
        shown = {m["id"]: m for m in await desk.messages(first.conversation_id)}
        assert shown[first.message_id]["readAt"] and shown[second.message_id]["readAt"], shown


async def test_with_read_receipts_never_nothing_reaches_meta(stack: StackUrls) -> None:
    async with opened_desk(stack, read_receipts="never") as desk:
        guest = await desk.guest_writes("Psst")
        await desk.socket.wait_for("conversation:updated", lambda d: d.get("id") == guest.conversation_id
                                   and d.get("unreadCount") == 1)
        mark = len(desk.socket.events)
        response = await desk.http.post(f"{stack.gateway}/api/conversations/{guest.conversation_id}/read",
                                        headers=desk.auth)
        assert response.status_code == 200, response.text
        assert response.json()["marked"] == 1 and response.json()["receiptSent"] is False, response.json()
        await wait_after(desk.socket, mark, "conversation:updated", read_again(desk, guest.conversation_id))
        assert await desk.read_receipts() == []
        assert (await desk.throughput())["received"] == 0


async def test_typing_sends_one_indicator_and_a_second_within_25_seconds_is_debounced(stack: StackUrls) -> None:
    async with opened_desk(stack) as desk:
        guest = await desk.guest_writes("Are you there?")
        await desk.socket.wait_for("conversation:updated", lambda d: d.get("id") == guest.conversation_id
                                   and d.get("unreadCount") == 1)
        joined = await desk.socket.client.call("join:conversation", {"conversationId": guest.conversation_id},
                                               timeout=10)
        assert joined == {"ok": True}, joined
        assert await desk.socket.client.call("typing:start", {"conversationId": guest.conversation_id},
                                             timeout=10) == {"ok": True}

        async def indicator() -> list[dict[str, Any]]:
            return [r for r in await desk.read_receipts() if r["typingIndicator"]]

        [typing] = await until(indicator)
        assert typing["messageId"] == guest.wamid, typing
        assert (await desk.message(guest.conversation_id, guest.message_id, lambda m: bool(m["readAt"])))["readAt"]

        assert await desk.socket.client.call("typing:start", {"conversationId": guest.conversation_id},
                                             timeout=10) == {"ok": True}
        # something that goes out after the second typing:start, through the same path: a read receipt
        later = await desk.guest_writes("Hello?", wa_id=guest.wa_id)
        response = await desk.http.patch(f"{stack.gateway}/api/messages/{later.message_id}/read", headers=desk.auth)
        assert response.status_code == 200 and response.json()["receiptSent"] is True, response.text

        async def later_receipt() -> list[dict[str, Any]]:
            return [r for r in await desk.read_receipts() if r["messageId"] == later.wamid]

        await until(later_receipt)
        typing_indicators = [r["messageId"] for r in await desk.read_receipts() if r["typingIndicator"]]
        assert typing_indicators == [guest.wamid], await desk.read_receipts()
